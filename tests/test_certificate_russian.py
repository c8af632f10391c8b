"""The checks' own texts in Russian (issue 19): templates with their measured values, the Rules' own words.

The done-when of the issue, on a real run: the seeded-defect certificate of the default rig shows its failing
clause and reason without scrolling, in Russian with ``--lang ru`` and in English after ``harness report --lang
en``; and no English word is left in the Russian certificate's visible text except names (vendor, model, ids,
units, protocols, what the device's profile and the rig declare).
"""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path

import pytest
from conftest import METER_GOLDEN_GROUP, run_cli
from russian_text import declared_names, english_words
from test_certificate_first_screen import first_screen

from harness.reporting import localize
from harness.reporting.clauses import CHAPTER_TITLES, CHAPTER_TITLES_RU
from harness.reporting.i18n import catalog_path, language, translations
from harness.reporting.reasons import one_line
from harness.reporting.records import Check
from harness.reporting.texts import Msg, localized

ROOT = Path(__file__).resolve().parent.parent

# -- the mechanism ----------------------------------------------------------------------------------------
def test_a_reason_is_a_template_with_its_measured_values():
    check = Check("KZ-95-07", "t", "nvm", ["95"], "meter")
    check.within(Msg("cut {cut}: {label} change", cut=1, label="A+ total"), -11.0, 0.0, 2.093567, unit="Wh",
                 note=Msg("powered {powered:.2f} s around the cut, ready after {ready:.2f} s", powered=1.3046,
                          ready=1.15))
    m = check.measurements[0]
    assert m.name == "cut 1: A+ total change" and m.texts["name"]["values"] == {"cut": "1", "label": "A+ total"}
    assert m.texts["note"]["values"] == {"powered": "1.30", "ready": "1.15"}  # as the check formatted them
    english = m.describe()
    assert english == "cut 1: A+ total change: -11.0 Wh (limit 0.0 … 2.093567) — powered 1.30 s around the cut, " \
                      "ready after 1.15 s"
    with language("ru"):
        russian = english.localized()
    assert russian == "отключение 1: изменение A+ total: -11.0 Wh (предел 0.0 … 2.093567) — под питанием 1.30 с " \
                      "вокруг отключения, готов через 1.15 с"
    for number in ("-11.0", "0.0", "2.093567", "1.30", "1.15"):  # moved, never re-worded
        assert number in russian
    restored = pickle.loads(pickle.dumps(english))  # a reason crosses processes inside an exception
    assert restored == english and restored.data() == english.data()
    with language("ru"):
        assert localized(str(english), english.data()) == russian
        assert localized("a device's own words") == "a device's own words"  # no template, no msgid: as written


def test_verdict_and_yes_no_values_translate_in_their_context():
    check = Check("KZ-1-01", "t", "s", ["1"], "meter")
    check.equal(Msg("DUT process alive after the faults"), False, True)
    with language("ru"):
        text = check.measurements[0].describe().localized()
        verdict = Msg("{id} {verdict}: {reason}", id="KZ-1-01", verdict=Msg.in_context("verdict", "FAIL"),
                      reason="x").localized()
    assert text == "процесс устройства жив после отказов: нет (предел = да)"
    assert verdict == "KZ-1-01 НЕ СООТВЕТСТВУЕТ: x"


def test_the_russian_catalog_translates_every_check_text_keeping_its_placeholders():
    """Every msgid Babel extracts (babel.cfg: the reports, the plugin, the suites) has a reviewed translation, and
    each placeholder, format included, is kept: a translation moves a number, never re-words it."""
    from babel.messages.pofile import read_po

    with catalog_path("ru").open("rb") as f:
        ru = read_po(f, locale="ru")
    pot = (ROOT / "harness" / "reporting" / "locale" / "harness.pot").read_text(encoding="utf-8")
    assert pot.count("\nmsgid ") > 800
    missing = [m.id for m in ru if m.id and (not m.string or m.fuzzy)]
    assert not missing, missing[:10]
    for m in ru:
        if not m.id or isinstance(m.id, tuple):
            continue
        assert sorted(re.findall(r"\{[^{}]*\}", m.string)) == sorted(re.findall(r"\{[^{}]*\}", m.id)), m.id


def test_the_committed_template_holds_every_text_the_code_has(tmp_path: Path):
    """A branch that adds check texts and forgets `pybabel extract`/`update` (docs/translations.md) leaves them
    English on every Russian certificate, silently: the committed .pot must equal a fresh extraction."""
    import subprocess
    import sys

    from babel.messages.pofile import read_po

    fresh = tmp_path / "fresh.pot"
    subprocess.run([str(Path(sys.executable).parent / "pybabel"), "-q", "extract", "-F", "babel.cfg", "--no-location",
                    "-w", "120", "-o", str(fresh), "."], cwd=ROOT, check=True, timeout=120)
    with fresh.open("rb") as f:
        extracted = {m.id for m in read_po(f) if m.id}
    with (ROOT / "harness" / "reporting" / "locale" / "harness.pot").open("rb") as f:
        committed = {m.id for m in read_po(f) if m.id}
    assert not extracted - committed, f"texts missing from harness.pot (run pybabel extract + update): " \
                                      f"{sorted(map(str, extracted - committed))[:10]}"
    assert not committed - extracted, f"harness.pot holds texts the code no longer has: " \
                                      f"{sorted(map(str, committed - extracted))[:10]}"


def test_russian_chapter_titles_are_the_rules_own_words():
    """The Rules' authoritative text is Russian: a chapter title is quoted (rules.yaml, checked against the Rules by
    tools/extract_rules.py --check), never paraphrased — in the catalog (Allure, console) and on the page."""
    ru = translations("ru")
    for chapter, title in CHAPTER_TITLES.items():
        assert ru.gettext(title) == CHAPTER_TITLES_RU[chapter], chapter
    with language("ru"):
        assert localize.chapter_title(11) == CHAPTER_TITLES_RU[11]
        assert localize.chapter_title(11).startswith("Требования к аппаратно-программным комплексам автоматизированных")


# -- the done-when, on a real run ---------------------------------------------------------------------------
def test_seeded_defect_certificate_of_the_default_rig_in_russian_then_english(tmp_path: Path):
    """The failing check and an N/A one (what the FAIL certificate's first screen, console and Allure need): the
    page around them is the whole certificate's, every clause listed. That the checks left out write no English
    either is proven on the whole golden run below, rendered in Russian."""
    out = tmp_path / "out"
    res = run_cli("certify", "--out", str(out), "--defect", "nvm_write_lag", "--reruns", "0", "--lang", "ru",
                  "--check", "KZ-95-07", "--check", "KZ-68-08")
    assert res.returncode == 1, res.stdout + res.stderr
    # console: the progress lines and the summary in Russian
    assert "Испытания на стенде 'sim-meter'" in res.stdout and "прошло" in res.stdout
    assert "elapsed" not in res.stdout and " PASS " not in res.stdout
    checks = {r["id"]: r for r in map(json.loads, (out / "checks.jsonl").read_text().splitlines())}
    failing = checks["KZ-95-07"]
    assert failing["verdict"] == "FAIL" and failing["reason"].startswith("KZ-95-07: cut 1: ")  # English record
    with language("ru"):
        reason_ru = one_line(localized(failing["reason"], failing["texts"]["reason"]), "KZ-95-07")
    assert reason_ru.startswith("отключение ") and "предел" in reason_ru and reason_ru in res.stdout
    # certificate.json: machine keys as they were, the texts in Russian beside the English
    cert = json.loads((out / "certificate.json").read_text())
    assert cert["language"] == "ru" and cert["verdict"] == "FAIL"
    row95 = next(r for r in cert["duts"]["meter"]["clauses"] if r["clause"] == "95")
    check = next(c for c in row95["checks"] if c["id"] == "KZ-95-07")
    assert row95["verdict"] == "FAIL" and check["verdict"] == "FAIL"
    assert check["reason"] == failing["reason"]
    assert check["translation"]["reason"].startswith("KZ-95-07: отключение 1: ")
    assert check["translation"]["title"].startswith("после каждого из повторных отключений питания")
    assert row95["translation"]["reason"].startswith("KZ-95-07 НЕ СООТВЕТСТВУЕТ: ")
    # the page: the failing clause and its reason without scrolling, and no English word but names
    html = (out / "certificate.html").read_text()
    seen = first_screen(html, tmp_path)
    assert "НЕ СООТВЕТСТВУЕТ" in seen and "п. 95" in seen.replace("\xa0", " ") and reason_ru in seen
    left = english_words(html, declared_names(out))
    assert not left, left
    # Allure: titled by check, grouped chapter → clause, N/A skipped with its reason, FAIL failed
    results = {}
    for path in (out / "allure-results").glob("*-result.json"):
        r = json.loads(path.read_text())
        labels = {lb["name"]: lb["value"] for lb in r["labels"]}
        results[labels["as_id"]] = (r, labels)
    na, na_labels = results["KZ-68-08"]  # OPC UA only: N/A on a meter
    assert na["status"] == "skipped" and "does not apply" in na["statusDetails"]["message"]
    assert na["name"].startswith("KZ-68-08 ") and na_labels["parentSuite"].startswith("Chapter 12.")
    assert na_labels["suite"].startswith("cl. 68") and results["KZ-95-07"][0]["status"] == "failed"
    # harness report rebuilds it in English: the same clause and reason, first screen
    assert run_cli("report", str(out), "--lang", "en").returncode == 0
    html = (out / "certificate.html").read_text()
    seen = first_screen(html, tmp_path)
    assert "FAIL" in seen and "cl. 95" in seen.replace("\xa0", " ")
    assert one_line(failing["reason"], "KZ-95-07") in seen
    cert = json.loads((out / "certificate.json").read_text())
    assert cert["language"] == "en" and "translation" not in next(
        r for r in cert["duts"]["meter"]["clauses"] if r["clause"] == "95")
    assert run_cli("verify", str(out)).returncode == 0


@pytest.mark.xdist_group(METER_GOLDEN_GROUP)
def test_the_whole_golden_certificate_in_russian_has_no_english_but_names(meter_golden_run, tmp_path: Path):
    """Every check of the default rig, each with its measurements' names and notes: the golden run (conftest:
    meter_golden_run, English) rebuilt with `harness report --lang ru` from its records — the same templates and
    values a `certify --lang ru` renders (records stay English either way) — leaves no English word but names,
    and the first screen gives the PASS verdict in Russian."""
    import shutil

    meter_golden_run.passed()
    out = tmp_path / "run"
    shutil.copytree(meter_golden_run.out, out)
    res = run_cli("report", str(out), "--lang", "ru")
    assert res.returncode == 0, res.stdout + res.stderr
    html = (out / "certificate.html").read_text()
    cert = json.loads((out / "certificate.json").read_text())
    assert cert["language"] == "ru" and cert["verdict"] == "PASS"
    seen = first_screen(html, tmp_path)
    assert "СООТВЕТСТВУЕТ" in seen and "Почему нет соответствия" not in seen
    left = english_words(html, declared_names(out))
    assert not left, left
    assert run_cli("verify", str(out)).returncode == 0


def test_every_template_a_check_writes_names_exactly_the_values_it_is_given():
    """A ``Msg("… {x} …", x=…)`` whose fields and values disagree fails only when that line runs — on some other
    rig, perhaps — so every literal template in the harness is held to its keyword values here."""
    import ast
    import string

    wrong = []
    for path in sorted((ROOT / "harness").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "Msg"
                    and node.args and isinstance(node.args[0], ast.Constant)):
                continue
            if any(k.arg is None for k in node.keywords):
                continue  # **values: checked where they are built
            fields = {f for _, f, _, _ in string.Formatter().parse(node.args[0].value) if f is not None}
            if fields != {k.arg for k in node.keywords} or len(node.args) != 1:
                wrong.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not wrong, wrong

