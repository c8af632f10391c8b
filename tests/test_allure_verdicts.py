"""The Allure report shows each check's verdict, not pytest's outcome: nothing in it may mislead its reader.

allure-pytest calls every exception but an assertion "broken": an N/A check (NotApplicable) and an
INCONCLUSIVE one looked alike, and a FAIL by failed measurements without a raise looked passed. The
result files a run leaves are mapped from checks.jsonl (the authority, unchanged).
"""

from __future__ import annotations

import json
from pathlib import Path

from harness.reporting.allure_verdicts import map_verdicts
from harness.reporting.clauses import CHAPTER_TITLES_RU
from harness.reporting.records import Attempt, CheckRecord
from harness.verdicts import Verdict


def _result(check_id: str, dut: str, status: str, message: str = "", *, dut_label: bool = True) -> dict:
    labels = [{"name": "as_id", "value": check_id}] + ([{"name": "dut", "value": dut}] if dut_label else [])
    out = {"name": check_id, "status": status, "labels": labels, "parameters": [{"name": "dut", "value": f"'{dut}'"}]}
    if message:
        out["statusDetails"] = {"message": message, "trace": "Traceback …"}
    return out


def _record(check_id: str, verdict: Verdict, reason: str = "", attempts: list[Attempt] | None = None) -> CheckRecord:
    return CheckRecord(id=check_id, title="t", suite="s", clauses=[check_id.split("-")[1]], dut="meter",
                       verdict=verdict, reason=reason, attempts=attempts or [])


def test_each_verdict_gets_a_status_that_does_not_mislead(tmp_path: Path):
    results = {
        "na": _result("KZ-73-01", "meter", "broken", "harness.verdicts.NotApplicable: no link-fault schedule"),
        "inc": _result("KZ-97-01", "meter", "broken", "harness.verdicts.Inconclusive: cannot provoke a field"),
        "fail": _result("KZ-95-04", "meter", "passed"),  # failed measurements without a raise
        "flaky": _result("KZ-97-02", "meter", "passed", dut_label=False),  # an older result: the parameter
        "pass": _result("KZ-95-01", "meter", "passed"),
        "other": _result("KZ-95-01", "heat", "broken", "not this DUT's record"),
    }
    for name, r in results.items():
        (tmp_path / f"{name}-result.json").write_text(json.dumps(r))
    (tmp_path / "x-container.json").write_text("{}")
    records = [
        _record("KZ-73-01", Verdict.NOT_APPLICABLE, "no link-fault schedule on this rig"),
        _record("KZ-97-01", Verdict.INCONCLUSIVE, "the bench cannot provoke a magnetic field"),
        _record("KZ-95-04", Verdict.FAIL, "cut 3: A+ total change 0.012 kWh outside 0 … 0.004"),
        _record("KZ-97-02", Verdict.FLAKY, "failed 1 time(s), then passed",
                [Attempt(verdict=Verdict.FAIL, reason="journal read timed out after 2.0 s")]),
        _record("KZ-95-01", Verdict.PASS),
    ]
    assert map_verdicts(tmp_path, records) == 4
    got = {name: json.loads((tmp_path / f"{name}-result.json").read_text()) for name in results}
    assert got["na"]["status"] == "skipped" and "trace" not in got["na"]["statusDetails"]
    assert got["na"]["statusDetails"]["message"] == "N/A — does not apply to this device: no link-fault schedule on " \
                                                    "this rig"
    assert got["inc"]["status"] == "broken"
    assert got["inc"]["statusDetails"]["message"].startswith("INCONCLUSIVE — the harness could not decide; not a "
                                                             "failure of the device: the bench cannot")
    assert got["fail"]["status"] == "failed" and "0.012 kWh" in got["fail"]["statusDetails"]["message"]
    assert got["flaky"]["status"] == "passed" and got["flaky"]["statusDetails"]["flaky"] is True
    assert "journal read timed out" in got["flaky"]["statusDetails"]["message"]
    assert got["pass"] == results["pass"] and got["other"] == results["other"]  # untouched
    assert map_verdicts(tmp_path, records) == 0  # idempotent


def test_the_report_is_built_from_a_translated_copy_and_the_results_stay(tmp_path: Path):
    from harness.reporting.allure_language import localized_results

    results = tmp_path / "allure-results"
    results.mkdir()
    na = _result("KZ-73-01", "meter", "broken", "harness.verdicts.NotApplicable: no schedule")
    na["labels"] += [{"name": "feature", "value": "cl. 73"}, {"name": "parentSuite", "value": "Chapter 13. x"},
                     {"name": "suite", "value": "cl. 73 — x"}, {"name": "epic", "value": "Chapter 13. x"}]
    (results / "na-result.json").write_text(json.dumps(na))
    (results / "a-attachment.json").write_text("[]")
    map_verdicts(results, [_record("KZ-73-01", Verdict.NOT_APPLICABLE, "no link-fault schedule on this rig")])
    before = {p.name: p.read_bytes() for p in results.iterdir()}
    copy = localized_results(results, tmp_path / "ru", "ru")
    assert {p.name: p.read_bytes() for p in results.iterdir()} == before  # the evidence is untouched
    got = json.loads((copy / "na-result.json").read_text())
    labels = {lb["name"]: lb["value"] for lb in got["labels"]}
    assert labels["parentSuite"] == labels["epic"] == f"Глава 13. {CHAPTER_TITLES_RU[13]}"  # the Rules' words
    assert labels["suite"].startswith("п. 73 — ") and labels["feature"] == "п. 73" and labels["as_id"] == "KZ-73-01"
    assert got["status"] == "skipped"
    assert got["statusDetails"]["message"] == "НЕПРИМЕНИМО — не относится к этому устройству: no link-fault " \
                                              "schedule on this rig"  # no record at hand: the reason as written
    assert (copy / "a-attachment.json").read_text() == "[]"


def test_a_result_with_its_record_is_titled_and_reasoned_in_the_run_language(tmp_path: Path):
    """With checks.jsonl beside allure-results, each test is titled with its check id and title and its message
    gives the verdict and the reason in the run's language — built from the check's templates, the numbers as
    measured. The result files themselves stay English (evidence under the seal)."""
    from harness.reporting.allure_language import localized_results
    from harness.reporting.texts import Msg, msg_data

    results = tmp_path / "allure-results"
    results.mkdir()
    title = "after each of repeated power cuts at random moments every energy register equals its last value before " \
            "the cut (plus at most what the load could add)"  # KZ-95-07's own title: a msgid of the catalog
    reason = Msg("{id}: {findings}", id="KZ-95-07", findings=Msg("cut {cut}: {label} change", cut=1, label="A+ total"))
    flaky_first = Msg("no answer ({error})", error="timed out after 2.0 s")
    records = [
        CheckRecord(id="KZ-95-07", title=title, suite="nvm", clauses=["95"], dut="meter", verdict=Verdict.FAIL,
                    reason=reason, texts={"reason": msg_data(reason)}),
        CheckRecord(id="KZ-73-01", title="t", suite="s", clauses=["73"], dut="meter", verdict=Verdict.INCONCLUSIVE,
                    reason=Msg("not exercised"), texts={"reason": msg_data(Msg("not exercised"))}),
        CheckRecord(id="KZ-97-02", title="t", suite="s", clauses=["97"], dut="meter", verdict=Verdict.FLAKY,
                    reason="failed 1 time(s), then passed",
                    attempts=[Attempt(verdict=Verdict.FAIL, reason=flaky_first,
                                      texts={"reason": msg_data(flaky_first)})]),
    ]
    for r in records:
        (results / f"{r.id}-result.json").write_text(json.dumps(_result(r.id, "meter", "broken", "x")))
    (tmp_path / "checks.jsonl").write_text("".join(r.model_dump_json() + "\n" for r in records))
    map_verdicts(results, records)
    english = json.loads((results / "KZ-95-07-result.json").read_text())
    assert english["statusDetails"]["message"] == "FAIL: KZ-95-07: cut 1: A+ total change"
    copy = localized_results(results, tmp_path / "ru", "ru")
    got = {r.id: json.loads((copy / f"{r.id}-result.json").read_text()) for r in records}
    name = got["KZ-95-07"]["name"]
    assert name.startswith("KZ-95-07 после каждого из повторных отключений питания") and name.endswith(" [meter]")
    assert got["KZ-95-07"]["statusDetails"]["message"] == "НЕ СООТВЕТСТВУЕТ: KZ-95-07: отключение 1: изменение " \
                                                          "A+ total"
    assert got["KZ-95-07"]["status"] == "failed"
    assert got["KZ-73-01"]["status"] == "broken"  # INCONCLUSIVE apart from FAIL, said so in Russian
    assert got["KZ-73-01"]["statusDetails"]["message"].startswith("НЕ УСТАНОВЛЕНО") and \
        got["KZ-73-01"]["statusDetails"]["message"].endswith(": не проверялось")
    flaky = got["KZ-97-02"]
    assert flaky["status"] == "passed" and flaky["statusDetails"]["flaky"] is True
    assert "нет ответа (timed out after 2.0 s)" in flaky["statusDetails"]["message"]
    assert json.loads((results / "KZ-95-07-result.json").read_text()) == english  # the evidence is untouched
