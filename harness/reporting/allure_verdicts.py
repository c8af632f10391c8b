"""Allure's statuses from the harness's verdicts, so the Allure report does not mislead its reader.

allure-pytest judges a test by pytest's outcome: any exception that is not an assertion is "broken",
so a check that ends N/A (``NotApplicable``) or INCONCLUSIVE (``Inconclusive``) showed as broken, and a
check whose failed measurements did not raise could show as passed. After the session the result files
are rewritten from the check records (checks.jsonl is the authority; its verdicts do not change):

    PASS → passed · FAIL → failed · INCONCLUSIVE → broken, the message saying it is not a device failure
    N/A → skipped, with its reason · FLAKY → passed and marked flaky (Allure's own notion), first failure told

A result is matched to its record by the ``as_id`` (check id) and ``dut`` labels the plugin sets.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from harness.reporting.i18n import N_
from harness.reporting.records import CheckRecord
from harness.reporting.texts import Msg

STATUS = {"PASS": "passed", "FAIL": "failed", "INCONCLUSIVE": "broken", "N/A": "skipped", "FLAKY": "passed"}
#: The start of each status message; the report builder translates it (allure_language.py).
PREFIX = {
    "FAIL": N_("FAIL: "),
    "INCONCLUSIVE": N_("INCONCLUSIVE — the harness could not decide; not a failure of the device: "),
    "N/A": N_("N/A — does not apply to this device: "),
    "FLAKY": N_("FLAKY — failed, then passed on a re-run (INCONCLUSIVE for the clause): "),
}


def _label(result: dict[str, Any], name: str) -> str | None:
    return next((str(lb.get("value")) for lb in result.get("labels") or [] if lb.get("name") == name), None)


def _dut(result: dict[str, Any]) -> str | None:
    dut = _label(result, "dut")
    if dut is None:  # results written before the dut label: the pytest parameter, repr'd
        dut = next((str(p.get("value")).strip("'\"") for p in result.get("parameters") or []
                    if p.get("name") == "dut"), None)
    return dut


def message(record: CheckRecord) -> Msg:
    """The status message of a check that did not PASS: its verdict said plainly, then its reason — a Msg, so the
    report builder can show it in the run's language (allure_language.py)."""
    verdict = record.verdict.value
    reason = record.text()
    if verdict == "FLAKY" and record.attempts:
        reason = Msg("first failure: {reason}", reason=record.attempts[0].text())
    prefix = Msg.literal(PREFIX[verdict]) if verdict in PREFIX else Msg("{verdict}: ", verdict=verdict)
    return prefix + (reason or Msg("no reason recorded"))


def mapped(result: dict[str, Any], record: CheckRecord) -> dict[str, Any]:
    """``result`` with the status and status details of ``record``'s verdict."""
    verdict = record.verdict.value
    out = dict(result)
    out["status"] = STATUS.get(verdict, "unknown")
    details = dict(result.get("statusDetails") or {})
    if verdict == "PASS":
        details = {}
    else:
        details["message"] = str(message(record))
        if verdict in ("N/A", "INCONCLUSIVE"):  # the raise inside the harness is no evidence about the device
            details.pop("trace", None)
    if verdict == "FLAKY":
        details["flaky"] = True
    if details:
        out["statusDetails"] = details
    else:
        out.pop("statusDetails", None)
    return out


def record_of(result: dict[str, Any], by_key: dict[tuple[str, str], CheckRecord]) -> CheckRecord | None:
    """The check record an Allure result is of (by its ``as_id`` and ``dut`` labels), if any."""
    return by_key.get((_label(result, "as_id") or "", _dut(result) or ""))


def map_verdicts(results_dir: Path, records: list[CheckRecord]) -> int:
    """Rewrite every ``*-result.json`` of a check in ``results_dir``; the number rewritten."""
    by_key = {(r.id, r.dut): r for r in records}
    changed = 0
    for path in sorted(results_dir.glob("*-result.json")):
        try:
            result = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        record = record_of(result, by_key)
        if record is None:
            continue
        new = mapped(result, record)
        if new != result:
            tmp = path.with_name(path.name + ".tmp")
            try:
                tmp.write_text(json.dumps(new, ensure_ascii=False), encoding="utf-8")
                os.replace(tmp, path)
            except OSError:  # a presentation detail must never cost the run its verdicts
                tmp.unlink(missing_ok=True)
                continue
            changed += 1
    return changed
