"""The summary `harness certify` prints: why not PASS first (with reasons), then the table, then the verdict.

The same order as the certificate's first screen: a person at the terminal sees what failed and why
before the clauses that passed. Written in the language of the surrounding ``i18n.language`` block.
"""

from __future__ import annotations

from typing import Any

from harness.reporting.i18n import _, ngettext, pgettext, verdict_name
from harness.reporting.reasons import one_line
from harness.reporting.texts import localized

_PROBLEMS = ("FAIL", "INCONCLUSIVE", "FLAKY")
_ROW_ORDER = ("FAIL", "INCONCLUSIVE", "FLAKY", "N/A", "NOT TESTED", "PASS")


def _rank(verdict: str) -> int:
    return _ROW_ORDER.index(verdict) if verdict in _ROW_ORDER else len(_ROW_ORDER)


def _kind(c: dict[str, Any]) -> str:
    kind = c.get("verdict_kind") or c.get("kind")
    return f" ({pgettext('verdict kind', 'documentary')})" if kind == "documentary" else ""


def why_not_pass(verdicts: dict[str, Any]) -> list[str]:
    """Each FAIL / INCONCLUSIVE clause with the first finding of each problem check, worst first."""
    lines: list[str] = []
    for dut, info in verdicts["duts"].items():
        rows = sorted(((n, c) for n, c in info["clauses"].items() if c["verdict"] in _PROBLEMS),
                      key=lambda nc: _rank(nc[1]["verdict"]))
        for clause, c in rows:
            lines.append(f"  {dut}  {_('cl.')} {clause}  {verdict_name(c['verdict'])}{_kind(c)}")
            for k in sorted(c["checks"], key=lambda k: (_rank(k["verdict"]), k["id"])):
                if k["verdict"] not in _PROBLEMS:
                    continue
                reason = localized(str(k.get("reason") or ""), (k.get("texts") or {}).get("reason"))
                if k["verdict"] == "FLAKY" and k.get("attempts"):
                    first = k["attempts"][0]
                    reason = _("failed, then passed on a re-run; first failure:") + " " + one_line(
                        localized(str(first.get("reason") or ""), (first.get("texts") or {}).get("reason")), k["id"])
                else:
                    reason = one_line(reason, k["id"]) or _("no reason recorded")
                lines.append(f"      {k['id']} {verdict_name(k['verdict'])}{_kind(k)}: {reason}")
    return [_("Why not PASS"), *lines, ""] if lines else []


def clause_table(verdicts: dict[str, Any]) -> str:
    rows = [(_("DUT"), _("clause"), _("verdict"), _("checks"))]
    flat = [(dut, clause, c) for dut, info in verdicts["duts"].items() for clause, c in info["clauses"].items()]
    for dut, clause, c in sorted(flat, key=lambda t: _rank(t[2]["verdict"])):  # stable: Rules order within
        failing = [f"{k['id']} {verdict_name(k['verdict'])}" for k in c["checks"] if k["verdict"] != "PASS"]
        passed = sum(1 for k in c["checks"] if k["verdict"] == "PASS")
        summary = ", ".join(failing) if failing else ngettext("{n} passed", "{n} passed", passed).format(n=passed)
        if c["not_run"]:
            summary += "; " + _("not run: {ids}").format(ids=", ".join(c["not_run"]))
        rows.append((dut, f"{_('cl.')} {clause}", verdict_name(c["verdict"]) + _kind(c), summary))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = why_not_pass(verdicts)
    for i, r in enumerate(rows):
        lines.append("  ".join(r[j].ljust(widths[j]) for j in range(3)) + "  " + r[3])
        if i == 0:
            lines.append("  ".join("-" * w for w in widths) + "  " + "-" * 20)
    not_run = sorted({k for info in verdicts["duts"].values() for c in info["clauses"].values() for k in c["not_run"]})
    lines.append("")
    overall = verdict_name(verdicts["verdict"])
    if verdicts["certification_grade"]:
        lines.append(_("overall: {verdict}  (certification-grade)").format(verdict=overall))
    else:
        lines.append(ngettext("overall: {verdict} for the checks that ran — NOT certification-grade: {n} check not run",
                              "overall: {verdict} for the checks that ran — NOT certification-grade: {n} checks not "
                              "run", len(not_run)).format(verdict=overall, n=len(not_run)))
    return "\n".join(lines)
