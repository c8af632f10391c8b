"""certificate.json: the full clause matrix of a run, for every DUT (docs/certificate.md).

verdicts.json holds only the clauses some check spoke to. The certificate lists every clause of
the catalogue (REQUIREMENTS.md: chapters 9–15 and the clauses outside them that it names), so
nothing is silently left out: a clause without a check says NOT TESTED and why — out of scope,
no check for this kind of device yet, or checks not run. Clauses a check names that the
catalogue lacks are kept too, at the end, rather than dropped.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Any

from harness.reporting.clauses import CHAPTER_TITLES, CLAUSES, Clause, clause_sort_key
from harness.reporting.texts import Msg, from_data, msg_data
from harness.verdicts import Verdict

FORMAT = "tek-harness-certificate/1"
_PROBLEMS = (Verdict.FAIL.value, Verdict.INCONCLUSIVE.value, Verdict.FLAKY.value, Verdict.NOT_APPLICABLE.value)


def build_certificate(out: Path, lab: dict[str, Any] | None = None) -> dict[str, Any]:
    """The certificate of the run in ``out``, from its verdicts.json and config/ copies."""
    verdicts = json.loads((out / "verdicts.json").read_text(encoding="utf-8"))
    version = verdicts.get("harness_version", "")
    duts = {name: _dut(info, out, version) for name, info in verdicts["duts"].items()}
    rig_copy = next(iter(sorted((out / "config").glob("rig-*"))), None)
    counts = Counter(row["verdict"] for d in duts.values() for row in d["clauses"])
    return {
        "format": FORMAT,
        "harness_version": version,
        "lab": lab,
        "rig": {"name": verdicts["rig"],
                "file": rig_copy.relative_to(out).as_posix() if rig_copy else verdicts.get("rig_file"),
                "sha256": _sha256(rig_copy) if rig_copy else None},
        "started": verdicts["started"], "finished": verdicts["finished"],
        "certification_grade": bool(verdicts["certification_grade"]),
        "interrupted": bool(verdicts.get("interrupted")),
        "verdict": verdicts["verdict"],
        "counts": {v.value: counts.get(v.value, 0) for v in Verdict if v != Verdict.FLAKY},
        "duts": duts,
        "chapters": {str(ch): title for ch, title in sorted(CHAPTER_TITLES.items())},
    }


def _dut(info: dict[str, Any], out: Path, version: str) -> dict[str, Any]:
    tested: dict[str, Any] = info.get("clauses", {})
    profile = info.get("profile")
    profile_copy = out / "config" / f"profile-{Path(profile).name}" if profile else None
    rows = [_row(CLAUSES[n], tested.get(n), info.get("kind", ""), version) for n in CLAUSES]
    extra = sorted((n for n in tested if n not in CLAUSES), key=clause_sort_key)
    rows += [_row(Clause(n, tested[n].get("chapter") or 0, tested[n].get("gist", "")), tested[n], info.get("kind", ""),
                  version) for n in extra]
    return {
        "vendor": info.get("vendor"), "model": info.get("model"), "kind": info.get("kind"),
        "serial_number": info.get("serial_number"), "firmware_version": info.get("firmware_version"),
        "profile": profile_copy.relative_to(out).as_posix() if profile_copy and profile_copy.exists() else profile,
        "profile_sha256": info.get("profile_sha256"), "defects": info.get("defects", []),
        "verdict": info.get("verdict", Verdict.NOT_TESTED.value), "clauses": rows,
    }


def _row(clause: Clause, tested: dict[str, Any] | None, dut_kind: str, version: str) -> dict[str, Any]:
    checks = tested["checks"] if tested else []
    not_run = tested["not_run"] if tested else []
    verdict = tested["verdict"] if tested else Verdict.NOT_TESTED.value
    reason = _reason(clause, verdict, checks, not_run, dut_kind, version)
    return {
        "clause": clause.number, "chapter": clause.chapter, "kind": clause.kind, "gist": clause.gist,
        "text_ru": clause.text_ru, "suites": list(clause.suites), "verdict": verdict,
        "verdict_kind": tested.get("verdict_kind", "none") if tested else "none",
        "reason": str(reason), "texts": {"reason": data} if (data := msg_data(reason)) else {},
        "checks": checks, "not_run": not_run,
    }


def _reason(clause: Clause, verdict: str, checks: list[dict[str, Any]], not_run: list[str], dut_kind: str,
            version: str) -> str:
    """Why a clause is not a plain PASS — never empty for any other verdict (a Msg: translatable)."""
    incomplete = Msg("checks not run: {ids}", ids=", ".join(not_run)) if not_run else ""
    if verdict == Verdict.PASS.value:
        return Msg("PASS for the checks that ran; {incomplete}", incomplete=incomplete) if incomplete else ""
    if verdict == Verdict.NOT_TESTED.value:
        if incomplete:
            return incomplete
        if clause.kind == "out of scope":
            return Msg("out of scope: a property of the state information system or a duty of its operators, "
                       "not of a device under test")
        suites = ", ".join(clause.suites)
        if clause.kind == "documentary":
            if suites:
                return Msg("no documentary check in tek-harness {version} applies to a {kind} of this kind "
                           "(suites: {suites})", version=version, kind=_kind_name(dut_kind), suites=suites)
            return Msg("no documentary check in tek-harness {version} applies to a {kind} of this kind",
                       version=version, kind=_kind_name(dut_kind))
        if suites:
            return Msg("no check in tek-harness {version} applies to a {kind} of this kind (suites: {suites})",
                       version=version, kind=_kind_name(dut_kind), suites=suites)
        return Msg("no check in tek-harness {version} applies to a {kind} of this kind", version=version,
                   kind=_kind_name(dut_kind))
    shown = [Msg("{id} {verdict}: {reason}", id=c["id"], verdict=Msg.in_context("verdict", c["verdict"]),
                 reason=from_data((c.get("texts") or {}).get("reason")) or c["reason"] or Msg("no reason given"))
             for c in checks if c["verdict"] in _PROBLEMS]
    parts = shown + ([incomplete] if incomplete else [])
    if parts:
        return Msg.joined("; ", parts)
    return Msg("{verdict} (no check gave a reason)", verdict=Msg.in_context("verdict", verdict))


def _kind_name(dut_kind: str) -> Msg | str:
    """A kind of device as a reader says it (``electricity_meter`` → "electricity meter"), translatable."""
    return _DUT_KINDS.get(dut_kind) or dut_kind or Msg("device")


_DUT_KINDS = {"electricity_meter": Msg("electricity_meter"), "heat_meter": Msg("heat_meter"),
              "data_concentrator": Msg("data_concentrator"), "controller": Msg("controller")}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
