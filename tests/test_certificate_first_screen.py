"""The certificate's first screen, in English and Russian: the verdict and every failing clause's reason
without scrolling, and no English left in the Russian certificate's own words.

"Without scrolling" is measured in headless Chromium: a copy of the page (the certificate itself has no
script, and keeps none) gets a probe that lists the text laid out wholly inside the 1280×800 viewport.
"""

from __future__ import annotations

import copy
import json
import re
from html import unescape
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from browser import chromium
from conftest import run_cli
from test_certificate_html import certificate, records

from harness.reporting.clauses import CHAPTER_TITLES
from harness.reporting.html import render_certificate_html
from harness.reporting.i18n import CHAPTER_TITLES as MARKED_CHAPTER_TITLES
from harness.reporting.i18n import language, languages, translations
from harness.reporting.reasons import one_line
from harness.verdicts import Verdict

VIEWPORT = (1280, 800)
VERDICT = {"en": {"FAIL": "FAIL", "PASS": "PASS"}, "ru": {"FAIL": "НЕ СООТВЕТСТВУЕТ", "PASS": "СООТВЕТСТВУЕТ"}}
CLAUSE = {"en": "cl.", "ru": "п."}

# Lays out the page and appends, as JSON in <pre id="probe">, the text of every text node whose boxes all lie
# inside the viewport (a node that runs below the fold does not count as seen).
PROBE = """<script>(function () {
  const w = window.innerWidth, h = window.innerHeight, seen = [];
  const walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT), range = document.createRange();
  for (let n = walk.nextNode(); n; n = walk.nextNode()) {
    if (!n.textContent.trim()) continue;
    range.selectNodeContents(n);
    const boxes = Array.from(range.getClientRects()).filter(r => r.width > 0 && r.height > 0);
    if (boxes.length && boxes.every(r => r.top >= 0 && r.bottom <= h && r.left >= 0 && r.right <= w + 1)) {
      seen.push(n.textContent);
    }
  }
  const pre = document.createElement("pre");
  pre.id = "probe";
  pre.textContent = JSON.stringify({width: w, height: h, text: seen.join(" ")});
  document.body.appendChild(pre);
})();</script>"""


def first_screen(html: str, tmp: Path) -> str:
    """The text a reader sees in a 1280×800 window without scrolling."""
    page = tmp / f"probe-{abs(hash(html))}.html"
    page.write_text(html.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    dom = chromium(tmp, f"--window-size={VIEWPORT[0]},{VIEWPORT[1]}", "--hide-scrollbars", "--dump-dom",
                   page.as_uri())
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S)
    assert found, "the probe did not run"
    probe = json.loads(unescape(found.group(1)))
    assert probe["width"] == VIEWPORT[0] and 600 <= probe["height"] <= VIEWPORT[1], probe
    return re.sub(r"\s+", " ", probe["text"])


def passing_certificate() -> dict[str, Any]:
    cert = copy.deepcopy(certificate())
    for row in cert["duts"]["meter"]["clauses"]:
        if row["verdict"] not in ("NOT TESTED", "PASS"):
            row.update(verdict="PASS", reason="", checks=[{**c, "verdict": "PASS", "reason": "", "attempts": []}
                                                          for c in row["checks"]])
    cert["verdict"] = cert["duts"]["meter"]["verdict"] = "PASS"
    verdicts = [row["verdict"] for row in cert["duts"]["meter"]["clauses"]]
    cert["counts"] = {v: verdicts.count(v) for v in set(verdicts)}
    return cert


def passing_records() -> list:
    return [r.model_copy(update={"verdict": Verdict.PASS, "reason": "", "attempts": []}) for r in records()]


def _problem_lines(cert: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """(clause, the one-line reasons of its problem checks) for each FAIL / INCONCLUSIVE clause."""
    out = []
    for row in cert["duts"]["meter"]["clauses"]:
        if row["verdict"] in ("FAIL", "INCONCLUSIVE"):
            lines = []
            for c in row["checks"]:
                if c["verdict"] in ("FAIL", "INCONCLUSIVE"):
                    lines.append(one_line(c["reason"], c["id"]))
                elif c["verdict"] == "FLAKY":
                    lines.append(one_line(c["attempts"][0]["reason"], c["id"]))
            out.append((row["clause"], lines))
    return out


@pytest.mark.parametrize("lang", ["en", "ru"])
def test_fail_certificate_first_screen_has_verdict_and_every_failing_reason(lang: str, tmp_path: Path):
    cert = certificate()
    row95 = next(r for r in cert["duts"]["meter"]["clauses"] if r["clause"] == "95")
    row95["checks"][1]["reason"] += "; cut 4: A+ total change 0.020 kWh outside 0 … 0.004 kWh (+3 more)"
    seen = first_screen(render_certificate_html(cert, records(), lang=lang), tmp_path)
    assert VERDICT[lang]["FAIL"] in seen
    assert {"en": "(+4 more)", "ru": "(и ещё 4)"}[lang] in seen
    with language(lang):  # "(+2 more)" is a label too
        problems = _problem_lines(cert)
    assert [c for c, _ in problems] == ["95", "97"]
    for clause, reasons in problems:
        assert f"{CLAUSE[lang]} {clause}" in seen.replace("\xa0", " "), clause
        for reason in reasons:
            assert reason in seen, (clause, reason)
    # measured or documentary is said, and the link to the evidence is there
    assert ("measured" if lang == "en" else "измерено") in seen
    assert ("evidence" if lang == "en" else "доказательства") in seen


@pytest.mark.parametrize("lang", ["en", "ru"])
def test_pass_certificate_first_screen_states_the_grade_and_the_clauses_covered(lang: str, tmp_path: Path):
    html = render_certificate_html(passing_certificate(), passing_records(), lang=lang)
    seen = first_screen(html, tmp_path)
    assert VERDICT[lang]["PASS"] in seen and VERDICT[lang]["FAIL"] not in seen
    statement = {"en": "Certification-grade: every applicable clause passed.",
                 "ru": "Пригодно для сертификации: устройство соответствует всем применимым пунктам."}[lang]
    assert statement in seen
    for clause in ("59", "87", "95", "96", "97"):
        assert f"{CLAUSE[lang]} {clause}" in seen.replace("\xa0", " ")
    assert ("Why not PASS" if lang == "en" else "Почему нет соответствия") not in html


# -- no English in the Russian certificate's own words ------------------------------------------------
# Allowed Latin words: names (tek-harness, Allure, the test data's vendor and model, lab), ids, units, hashes.
NAMES = {"tek", "harness", "TEK", "EM", "SIM", "KZ", "SN", "sha", "SHA", "Allure", "Test", "Lab", "LLP", "Astana",
         "Mangilik", "El", "T", "kWh", "ms", "Wh", "varh", "sim", "meter", "n", "k", "PASS", "FAIL"}


class _Chrome(HTMLParser):
    """The page's text outside what the run wrote (lang="en"), code, the Rules' quotes and the charts."""

    SKIP = ("code", "svg", "style", "title", "time")

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[bool] = []
        self.words: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("br", "meta", "img", "hr", "link", "input"):
            return
        skip = tag in self.SKIP or dict(attrs).get("lang") == "en"
        self.stack.append(skip or (bool(self.stack) and self.stack[-1]))

    def handle_endtag(self, tag: str) -> None:
        if self.stack and tag not in ("br", "meta"):
            self.stack.pop()

    def handle_data(self, text: str) -> None:
        if not (self.stack and self.stack[-1]):
            self.words += re.findall(r"[A-Za-z]+", text)


def test_russian_certificate_has_no_english_labels():
    for cert, recs in ((certificate(), records()), (passing_certificate(), passing_records())):
        cert = copy.deepcopy(cert)
        cert["certification_grade"], cert["interrupted"] = False, True
        cert["duts"]["meter"]["defects"] = ["register_missing"]
        cert["duts"]["meter"]["clauses"][46]["not_run"] = ["KZ-95-07"]
        html = render_certificate_html(cert, recs, lang="ru")
        assert '<html lang="ru">' in html
        chrome = _Chrome()
        chrome.feed(html)
        english = sorted(set(chrome.words) - NAMES)
        assert not english, english
        for verdict_en in ("INCONCLUSIVE", "NOT TESTED", "FLAKY", "Chapter", "Why not", "Overall verdict"):
            assert verdict_en not in re.sub(r'<[^>]*lang="en"[^>]*>[^<]*<', "<", html), verdict_en


def test_catalogs_cover_every_marked_text():
    """Every text marked for translation has a reviewed Russian translation (none missing, none fuzzy)."""
    from babel.messages.extract import extract_from_file
    from babel.messages.pofile import read_po

    from harness.reporting.i18n import catalog_path

    root = Path(__file__).resolve().parent.parent / "harness"
    files = [*sorted((root / "reporting").glob("*.py")), root / "certify.py"]  # as babel.cfg names them
    marked = {(ctx, msg if isinstance(msg, str) else msg[0]) for f in files
              for _line, msg, _comments, ctx in extract_from_file("harness.reporting.i18n_extract:extract", str(f))}
    with catalog_path("ru").open("rb") as f:
        ru = read_po(f, locale="ru")
    assert len(marked) > 100
    for ctx, msg in marked:
        entry = ru.get(msg, context=ctx)
        assert entry is not None and entry.string and not entry.fuzzy, (ctx, msg)
        strings = entry.string if isinstance(entry.string, tuple) else (entry.string,)
        assert all(strings), (ctx, msg)
        for s in strings:  # placeholders kept: a translation never re-words a number
            assert set(re.findall(r"\{\w+\}", s)) == set(re.findall(r"\{\w+\}", msg)), (msg, s)
    assert list(MARKED_CHAPTER_TITLES.values()) == [CHAPTER_TITLES[k] for k in MARKED_CHAPTER_TITLES]
    assert languages()[:2] == ["en", "ru"] and translations("ru").ngettext("{n} clause", "{n} clauses", 5) == \
        "{n} пунктов"
    with language("ru"):
        from harness.reporting.i18n import verdict_name
        assert verdict_name("N/A") == "НЕПРИМЕНИМО"


# -- a real run: the seeded-defect certificate of the default rig in Russian, then English, is in
# test_certificate_russian.py (the whole rig: its every check's texts).


def test_rig_lab_language_is_checked_against_the_catalogs(tmp_path: Path):
    from harness.resources import builtin_rig

    rig = builtin_rig().read_text(encoding="utf-8")
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    profiles = builtin_rig().parent.parent / "device_profiles"
    rig = rig.replace("../device_profiles/", f"{profiles}/")
    good.write_text(rig + "lab:\n  name: Test Lab\n  language: ru\n", encoding="utf-8")
    bad.write_text(rig + "lab:\n  name: Test Lab\n  language: xx\n", encoding="utf-8")
    assert run_cli("check", str(good)).returncode == 0
    res = run_cli("check", str(bad))
    assert res.returncode == 2 and "bad.yaml" in res.stderr and "language" in res.stderr
    assert "no catalog for language 'xx'; languages: en, ru" in res.stderr and "Traceback" not in res.stderr


def test_a_new_catalog_is_a_new_language(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         request: pytest.FixtureRequest):
    """Kazakh (or any language) needs only its catalog: no code, no build step."""
    from harness.reporting import i18n

    i18n.translations.cache_clear()  # compiled catalogs are cached per language; this test swaps the folder
    request.addfinalizer(i18n.translations.cache_clear)

    po = i18n.catalog_path("ru").read_text(encoding="utf-8")
    po = po.replace('msgstr "Общий вердикт"', 'msgstr "Жалпы қорытынды"').replace("Language: ru", "Language: kk")
    kk = tmp_path / "kk" / "LC_MESSAGES" / "harness.po"
    kk.parent.mkdir(parents=True)
    kk.write_text(po, encoding="utf-8")
    monkeypatch.setattr(i18n, "LOCALE_DIR", tmp_path)
    assert i18n.languages() == ["en", "kk"]
    html = render_certificate_html(certificate(), records(), lang="kk")
    assert '<html lang="kk">' in html and "Жалпы қорытынды" in html
    with pytest.raises(i18n.UnknownLanguage, match="languages: en, kk"):
        render_certificate_html(certificate(), records(), lang="ru")


def test_console_summary_puts_failures_first_with_reasons():
    from harness.reporting.table import clause_table

    def clause(verdict: str, *checks: dict[str, Any], not_run: list[str] | None = None) -> dict[str, Any]:
        return {"verdict": verdict, "checks": list(checks), "not_run": not_run or [], "verdict_kind": "measured"}

    verdicts = {"certification_grade": True, "verdict": "FAIL", "duts": {"meter": {"clauses": {
        "59": clause("PASS", {"id": "KZ-59-01", "verdict": "PASS", "reason": ""}),
        "95": clause("FAIL", {"id": "KZ-95-04", "verdict": "FAIL", "reason": "KZ-95-04: cut 3: +0.012 kWh; cut 4: x"}),
        "96": clause("N/A", {"id": "KZ-96-01", "verdict": "N/A", "reason": "a heat-meter clause"}),
        "97": clause("INCONCLUSIVE", {"id": "KZ-97-02", "verdict": "FLAKY", "reason": "failed, then passed",
                                      "attempts": [{"verdict": "FAIL", "reason": "read timed out after 2.0 s"}]}),
    }}}}
    text = clause_table(verdicts)
    lines = text.splitlines()
    assert lines[0] == "Why not PASS" and "cl. 95  FAIL" in lines[1]
    assert "KZ-95-04 FAIL: cut 3: +0.012 kWh (+1 more)" in lines[2]
    assert "cl. 97  INCONCLUSIVE" in lines[3] and "first failure: read timed out after 2.0 s" in lines[4]
    table = [line for line in lines if line.startswith("meter")]
    assert [t.split()[2] for t in table] == ["95", "97", "96", "59"]  # worst first
    assert lines[-1] == "overall: FAIL  (certification-grade)" and "a heat-meter clause" not in text
    with language("ru"):
        ru = clause_table(verdicts)
    assert ru.startswith("Почему нет соответствия") and "п. 95  НЕ СООТВЕТСТВУЕТ" in ru
    assert "итог: НЕ СООТВЕТСТВУЕТ" in ru and "(и ещё 1)" in ru


def test_fifteen_failing_clauses_still_fit_the_first_screen(tmp_path: Path):
    """The issue's certificate had FAIL 15: past five problem clauses each takes one line, gist left out."""
    from test_certificate_html import _check

    cert = copy.deepcopy(certificate())
    failing = [r for r in cert["duts"]["meter"]["clauses"] if r["verdict"] == "NOT TESTED"][:14]
    for n, row in enumerate(failing, 1):
        cid = f"KZ-{row['clause']}-01"
        row.update(verdict="FAIL", reason=f"{cid} FAIL",
                   checks=[_check(cid, "FAIL", f"{cid}: reading {n} off by 0.{n}")])
    html = render_certificate_html(cert, records(), lang="ru")
    seen = first_screen(html, tmp_path)
    assert all(f"reading {n} off by 0.{n}" in seen for n in range(1, 15))
    assert "KZ-95-04 failed: cut 3: A+ total change 0.012 kWh outside 0 … 0.004 kWh" in seen
    assert 'class="compact"' in html and "why-clause" in html  # 97 keeps its two checks on lines of their own
