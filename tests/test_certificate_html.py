"""certificate.html: what a lab hands over must open in a real browser, print, and hide nothing.

The page is rendered from a realistic certificate (every clause of ch. 9-15, a FAIL, a documentary
PASS, an N/A, an INCONCLUSIVE with a FLAKY check, many NOT TESTED) and opened in headless Chromium,
because only a browser proves the markup parses into the rows, reasons and charts we wrote. Debian's
chromium is a test dependency (`.ci/run` installs it): a missing browser fails loudly, never skips.
"""

from __future__ import annotations

import copy
import math
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from browser import chromium

from harness.reporting.clauses import CHAPTER_TITLES, CLAUSES
from harness.reporting.html import clause_row_id, render_certificate_html
from harness.reporting.records import Attempt, Chart, CheckRecord, Measurement
from harness.reporting.svg import SVG_NS, downsample, nice_ticks, render_chart_svg
from harness.verdicts import Verdict

RU_95 = "энергонезависимую память"
TEXT_RU_95 = ("Приборы учета электрической энергии имеют энергонезависимую память, обеспечивающую хранение основных "
              "параметров с фиксацией даты и времени, а также обеспечивают запись и сохранение в памяти значений "
              "потребленной активной и реактивной электроэнергии в прямом и обратном направлении, как суммарно, так и "
              "по каждому тарифу.")
FAIL_REASON = "KZ-95-04 failed: cut 3: A+ total change 0.012 kWh outside 0 … 0.004 kWh"
INC_REASON = "KZ-97-02 is FLAKY (failed, then passed on a re-run); KZ-97-04: the bench cannot provoke a magnetic field"
NA_REASON = "a heat-meter clause: the DUT is an electricity meter"
OUT_OF_SCOPE = "out of scope: a duty of the state information system, not of the equipment"
NO_CHECK = "no check in the harness for this clause yet"
HOSTILE = '<script>alert(1)</script><img src="https://evil.example/x.png">'


# -- test data --------------------------------------------------------------------------------------
def _row(no: int, verdict: str = "NOT TESTED", **kw: Any) -> dict[str, Any]:
    ch = next(c for c, lo, hi in [(9, 49, 51), (10, 52, 57), (11, 58, 62), (12, 63, 72), (13, 73, 79),
                                   (14, 80, 86), (15, 87, 97)] if lo <= no <= hi)
    known = CLAUSES.get(str(no))
    row = {"clause": str(no), "chapter": ch, "kind": "automatic",
           "gist": known.gist if known else f"requirement {no} of chapter {ch}",
           "text_ru": (known.text_ru if known and known.text_ru else f"Текст пункта {no} Правил (тестовые данные)."),
           "suites": [], "verdict": verdict, "verdict_kind": "none" if verdict == "NOT TESTED" else "measured",
           "reason": "", "checks": [], "not_run": []}
    if verdict == "NOT TESTED":
        row["kind"], row["reason"] = ("out of scope", OUT_OF_SCOPE) if ch == 10 else ("automatic", NO_CHECK)
    row.update(kw)
    return row


def _check(cid: str, verdict: str, reason: str = "", kind: str = "measured", attempts: list | None = None) -> dict:
    return {"id": cid, "title": f"title of {cid}", "verdict": verdict, "kind": kind, "reason": reason,
            "attempts": attempts or []}


def certificate() -> dict[str, Any]:
    special = {
        59: _row(59, "PASS", suites=["availability"], checks=[_check("KZ-59-01", "PASS")]),
        87: _row(87, "PASS", kind="documentary", verdict_kind="documentary",
                 checks=[_check("KZ-87-01", "PASS", kind="documentary")]),
        95: _row(95, "FAIL", reason=FAIL_REASON, suites=["nvm", "registers"], text_ru=TEXT_RU_95,
                 checks=[_check("KZ-95-01", "PASS"), _check("KZ-95-04", "FAIL", FAIL_REASON)]),
        96: _row(96, "N/A", reason=NA_REASON, checks=[_check("KZ-96-01", "N/A", NA_REASON)]),
        97: _row(97, "INCONCLUSIVE", reason=INC_REASON, checks=[
            _check("KZ-97-02", "FLAKY", "failed, then passed on a re-run",
                   attempts=[{"verdict": "FAIL", "reason": "journal read timed out after 2.0 s"}]),
            _check("KZ-97-04", "INCONCLUSIVE", "the bench cannot provoke a magnetic field")]),
    }
    rows = [special.get(n) or _row(n) for n in range(49, 98)]
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["verdict"]] = counts.get(r["verdict"], 0) + 1
    return {
        "format": "tek-harness-certificate/1", "harness_version": "0.3.0",
        "lab": {"name": "Test Lab LLP", "address": "Astana, Mangilik El 55", "accreditation": "KZ.T.02.1234"},
        "rig": {"name": "sim-meter", "file": "config/rig-sim-meter.yaml", "sha256": "ab" * 32},
        "started": "2026-11-30T11:00:00Z", "finished": "2026-11-30T11:42:17Z",
        "certification_grade": True, "interrupted": False, "verdict": "FAIL", "counts": counts,
        "duts": {"meter": {"vendor": "TEK", "model": "EM4-SIM", "kind": "electricity_meter",
                           "serial_number": "SN-000123", "firmware_version": "4.2.1",
                           "profile": "config/profile-tek-sim-em4.yaml", "profile_sha256": "cd" * 32,
                           "defects": [], "verdict": "FAIL", "clauses": rows}},
        "chapters": {str(k): v for k, v in CHAPTER_TITLES.items()},
    }


def records() -> list[CheckRecord]:
    cuts = [(10.0 * i + 5, f"cut {i + 1}") for i in range(4)]
    a_plus = [(t / 2, 1200 + t * 0.01 + (0.012 if t > 70 else 0)) for t in range(0, 90)]
    reg = Chart(title="Registers across each power cut", x_label="wall time since the first cut, s",
                y_label="register value", series={"A+ total": a_plus, "A+ tariff 1": [(x, y - 0.3) for x, y in a_plus]},
                events=cuts)
    hist = Chart(title="Response times of an availability run", x_label="response time, ms", y_label="count",
                 kind="histogram",
                 series={"reads": [(5.0 * i, 200 * math.exp(-(((i - 6) / 3) ** 2))) for i in range(20)]})
    timeline = Chart(title="Journal timeline", x_label="device time since the first entry held, h",
                     y_label="sequence number", kind="scatter",
                     series={"power off": [(h, 2 * h) for h in range(0, 24, 3)],
                             "power on": [(h + 0.1, 2 * h + 1) for h in range(0, 24, 3)]})
    m = Measurement
    return [
        CheckRecord(id="KZ-59-01", title="the meter answers the collector within its declared time",
                    suite="availability", clauses=["59"], dut="meter", verdict=Verdict.PASS, started=0, finished=63.2,
                    measurements=[m(name="p99 response", measured=41.5, limit="≤ 200", unit="ms", passed=True)],
                    charts=[hist]),
        CheckRecord(id="KZ-87-01", title="the instrument is metrologically verified", suite="documentation",
                    clauses=["87"], dut="meter", verdict=Verdict.PASS, kind="documentary", finished=0.1,
                    measurements=[m(name="last verification", measured="2026-03-01", limit="≤ run date",
                                    passed=True, note="registry entry KZ.02.03.12345")]),
        CheckRecord(id="KZ-95-01", title="every energy register is declared and readable", suite="registers",
                    clauses=["95"], dut="meter", verdict=Verdict.PASS, finished=2.5,
                    measurements=[m(name="registers read", measured=20, limit="= 20", passed=True)]),
        CheckRecord(id="KZ-95-04", title="energy registers survive power cuts", suite="nvm", clauses=["95"],
                    dut="meter", verdict=Verdict.FAIL, reason=FAIL_REASON + " " + HOSTILE, started=10, finished=171,
                    measurements=[m(name="cut 1: A+ total change", measured=0.001, limit="0 … 0.004", unit="kWh",
                                    passed=True, note="powered 1.20 s around the cut"),
                                  m(name="cut 3: A+ total change", measured=0.012, limit="0 … 0.004", unit="kWh",
                                    passed=False, note="powered 1.31 s around the cut")],
                    charts=[reg]),
        CheckRecord(id="KZ-96-01", title="heat registers", suite="heat", clauses=["96"], dut="meter",
                    verdict=Verdict.NOT_APPLICABLE, reason=NA_REASON),
        CheckRecord(id="KZ-97-02", title="journal entries carry date and time", suite="journal", clauses=["97"],
                    dut="meter", verdict=Verdict.FLAKY, reason="failed, then passed on a re-run", finished=12,
                    attempts=[Attempt(verdict=Verdict.FAIL, reason="journal read timed out after 2.0 s")],
                    measurements=[m(name="entries with a timestamp", measured=48, limit="= 48", passed=True)],
                    charts=[timeline]),
        CheckRecord(id="KZ-97-04", title="magnetic-field event is journalled", suite="journal", clauses=["97"],
                    dut="meter", verdict=Verdict.INCONCLUSIVE, reason="the bench cannot provoke a magnetic field"),
    ]


# -- a tiny DOM reader: text and ancestors of every element with an id -------------------------------
_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class _Ids(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.stack: list[tuple[str, str | None]] = []
        self.text: dict[str, list[str]] = {}
        self.parents: dict[str, list[str]] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        eid = dict(attrs).get("id")
        if eid:
            self.parents[eid] = [i for _, i in self.stack if i]
            self.text[eid] = []
        if tag not in _VOID:
            self.stack.append((tag, eid))

    def handle_endtag(self, tag: str) -> None:
        while self.stack:
            if self.stack.pop()[0] == tag:
                break

    def handle_data(self, data: str) -> None:
        for _, eid in self.stack:
            if eid:
                self.text[eid].append(data)


def _ids(html: str) -> _Ids:
    p = _Ids()
    p.feed(html)
    return p


def _text(p: _Ids, eid: str) -> str:
    return re.sub(r"\s+", " ", "".join(p.text[eid]))


# Its module-scoped fixtures are made once per worker: one group keeps the module on one worker (--dist loadgroup).
pytestmark = pytest.mark.xdist_group("certificate-html")


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("certificate") / "certificate.html"
    out.write_text(render_certificate_html(certificate(), records(), allure_report="allure-report.html"),
                   encoding="utf-8")
    return out


@pytest.fixture(scope="module")
def dom(page: Path) -> str:
    return chromium(page.parent, "--dump-dom", page.as_uri())


# -- in the browser ---------------------------------------------------------------------------------
def test_browser_shows_verdict_matrix_reasons_and_charts(dom: str):
    p = _ids(dom)
    assert "Overall verdict" in dom and re.search(r'class="badge v-fail big">FAIL<', dom)
    assert "clause-matrix-meter" in p.parents["clause-95"]
    row95 = _text(p, "clause-95")
    assert "FAIL" in row95 and RU_95 in row95 and "KZ-95-04" in row95 and FAIL_REASON in row95
    assert "PASS (documentary)" in _text(p, "clause-87")
    assert "INCONCLUSIVE" in _text(p, "clause-97") and "FLAKY" in _text(p, "clause-97")
    rows = [i for i, parents in p.parents.items() if "clause-matrix-meter" in parents and i.startswith("clause-")]
    assert rows == ["clause-59", "clause-87", "clause-95", "clause-96", "clause-97"]  # the judged clauses
    closing = [i for i, parents in p.parents.items() if "cannot-apply" in parents and i.startswith("clause-")]
    assert len(rows) + len(closing) == 49  # every clause of ch. 9-15 is somewhere, none twice
    for reason in (FAIL_REASON, INC_REASON, NA_REASON, OUT_OF_SCOPE, NO_CHECK, "journal read timed out after 2.0 s"):
        assert reason in dom, reason
    matrix = _text(p, "clause-matrix-meter")
    assert "Chapter 15. Requirements for measuring instruments and metering equipment" in matrix
    check = _text(p, "check-meter-KZ-95-04")
    assert "cut 3: A+ total change" in check and "Registers across each power cut" in check
    assert dom.count("<svg") >= 3 and "<script>alert" not in dom  # the hostile reason stayed text
    assert '<td class="ru" lang="ru">' in dom and '<html lang="en">' in dom


def test_screenshot_and_pdf(page: Path):
    png, pdf = page.parent / "page.png", page.parent / "page.pdf"
    chromium(page.parent, f"--screenshot={png}", "--window-size=1280,2000", "--hide-scrollbars", page.as_uri())
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 50_000
    chromium(page.parent, f"--print-to-pdf={pdf}", "--no-pdf-header-footer", page.as_uri())
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 20_000


# -- the HTML itself --------------------------------------------------------------------------------
def _external(html: str) -> list[str]:
    return (re.findall(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", html, re.I)
            + re.findall(r"@import|url\(|<script|<link\b", html, re.I))


def test_self_contained_and_escaped():
    html = render_certificate_html(certificate(), records())
    assert not _external(html)
    assert set(re.findall(r"https?://[^\s\"'<>&]+", html)) <= {SVG_NS, "https://evil.example/x.png"}
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "@media print" in html
    assert "not built" in html and "npm install -g allure" in html and "harness report OUTDIR" in html
    assert "manifest.json" in html and "certificate.sig.json" in html and "harness verify OUTDIR" in html
    with pytest.raises(ValueError, match="relative"):
        render_certificate_html(certificate(), records(), allure_report="https://example.org/allure.html")


def test_clauses_that_cannot_apply_close_the_page_folded_by_reason():
    html = render_certificate_html(certificate(), records())
    closing = html[html.index('id="cannot-apply"'):html.index('class="evidence"')]
    assert html.index('id="cannot-apply"') > html.index('<h2>Check details</h2>')  # after the evidence
    groups = re.findall(r"<details class=\"na-group\".*?</details>", closing, re.S)
    assert len(groups) == 2 and "<script" not in closing.lower()  # folded without a script
    scope = next(g for g in groups if OUT_OF_SCOPE in g)
    assert all(f'id="clause-{n}"' in scope for n in range(52, 58))  # ch. 10 is out of scope in the data
    summary = scope[:scope.index("</summary>")]
    assert "6 clauses" in summary and "52, 53, 54, 55, 56, 57" in summary  # on paper the numbers stay visible
    assert closing.count(OUT_OF_SCOPE) == 1 and closing.count(NO_CHECK) == 1
    assert "clause-95" not in closing and "clause-96" not in closing  # judged clauses stay in the matrix
    cert = copy.deepcopy(certificate())
    cert["duts"]["meter"]["clauses"][0]["reason"] = "no check applies to a meter (suites: robustness)"
    html = render_certificate_html(cert, records())
    closing = html[html.index('id="cannot-apply"'):html.index('class="evidence"')]
    kind = closing[closing.index('id="cannot-apply-meter-kind"'):]
    assert closing.count("<details") == 2 and kind.count(NO_CHECK) == 48 - 6 - 5  # said on each row now
    row49 = kind[kind.index('id="clause-49"'):]
    assert "(suites: robustness)" in row49[:row49.index("</tr>")]


def test_not_certification_grade_and_seeded_defects_are_prominent():
    cert = copy.deepcopy(certificate())
    cert.update(certification_grade=False, interrupted=True, lab=None)
    cert["duts"]["meter"]["defects"] = ["register_missing"]
    cert["duts"]["meter"]["clauses"][46]["not_run"] = ["KZ-95-07"]
    html = render_certificate_html(cert, [])
    assert "Not certification-grade" in html and "interrupted" in html and "KZ-95-07" in html
    assert "not a certification" in html and "register_missing" in html
    assert "no lab declared in the rig" in html and "No check records" in html


def test_several_duts_get_unique_row_ids():
    cert = copy.deepcopy(certificate())
    cert["duts"]["heat"] = copy.deepcopy(cert["duts"]["meter"])
    html = render_certificate_html(cert, records())
    ids = re.findall(r'\sid="([^"]+)"', html)
    assert len(ids) == len(set(ids))
    assert clause_row_id("heat", "95", several_duts=True) in ids and 'id="clause-matrix-heat"' in html


# -- svg.py -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("lo", "hi"), [(0, 1), (0.1, 0.37), (12345.6, 12349.1), (5, 5), (0, 0), (-3, 1e6),
                                        (1e-6, 3e-6), (-0.004, 0.0123), (1.7e9, 1.7e9 + 3600)])
def test_ticks_are_round_and_cover_the_range(lo: float, hi: float):
    ticks = nice_ticks(lo, hi)
    assert ticks[0] <= lo and ticks[-1] >= hi and 3 <= len(ticks) <= 9
    step = ticks[1] - ticks[0]
    mantissa = step / 10 ** math.floor(math.log10(step))
    assert any(math.isclose(mantissa, m, rel_tol=1e-6) for m in (1, 2, 5, 10))
    assert all(math.isclose(t / step, round(t / step), abs_tol=1e-6) for t in ticks)
    assert all(len(repr(t)) <= 14 for t in ticks)  # no 0.30000000000000004


def test_downsampling_keeps_the_spike():
    pts = [(float(i), math.sin(i / 500)) for i in range(200_000)]
    pts[123_457] = (123_457.0, 50.0)
    pts[5] = (5.0, -40.0)
    thin = downsample(pts)
    assert len(thin) <= 2000 and (123_457.0, 50.0) in thin and (5.0, -40.0) in thin
    assert thin == sorted(thin)
    svg = render_chart_svg(Chart(title="big", x_label="s", y_label="v", series={"a": pts}))
    assert len(svg) < 200_000 and "50" in svg


def test_edge_cases_render_without_error():
    nan, inf = float("nan"), float("inf")
    empty = render_chart_svg(Chart(title="nothing", x_label="x", y_label="y", series={"a": [], "b": [(nan, 1.0)]}))
    assert empty.startswith("<svg") and "no data" in empty
    assert "no data" in render_chart_svg(Chart(title="none", x_label="x", y_label="y", series={}))
    for kind in ("line", "step", "scatter", "histogram"):
        for series in ({"one": [(3.0, 7.0)]}, {"flat": [(0.0, 2.0), (1.0, 2.0), (2.0, 2.0), (inf, 1.0)]}):
            svg = render_chart_svg(Chart(title="t", x_label="x", y_label="y", kind=kind, series=series,
                                         events=[(1.0, "cut")]))
            assert svg.startswith("<svg") and "nan" not in svg.lower() and "inf" not in svg.lower()


def test_svg_has_legend_events_distinct_series_and_nothing_external():
    chart = Chart(title="Failover <timeline>", x_label="t, s", y_label="channel", kind="step",
                  series={"active": [(0, 1), (5, 2), (9, 1)], "standby": [(0, 2), (5, 1), (9, 2)]},
                  events=[(5.0, "link A cut"), (9.0, "link A back")] + [(5 + i / 10, f"e{i}") for i in range(30)])
    svg = render_chart_svg(chart)
    assert "Failover &lt;timeline&gt;" in svg and "link A cut" in svg and "Unlabelled events" in svg
    assert svg.count('stroke-dasharray="5 3"') == 32  # every event is a dashed line, labelled or not
    assert 'stroke="#0072B2"' in svg and 'stroke="#D55E00"' in svg and 'stroke-dasharray="7 3"' in svg
    assert "<script" not in svg.lower() and "url(" not in svg
    assert set(re.findall(r"https?://[^\s\"'<>]+", svg)) == {SVG_NS}


def test_folded_groups_unfold_on_paper(tmp_path: Path):
    """The clauses that cannot apply are folded on screen (<details>, no script) but printed whole."""
    from harness.reporting.html_style import CSS

    rule = "details.na-group::details-content{content-visibility:visible;display:contents}"
    assert rule in CSS
    html = render_certificate_html(certificate(), records())
    closing = html[:html.index("<main>") + 6] + html[html.index('<section class="cannot-apply'):html.index(
        '<section class="evidence"')] + "</main></body></html>"
    pages = {}
    for name, page_html in (("printed", closing), ("folded", closing.replace(rule, ""))):
        page, pdf = tmp_path / f"{name}.html", tmp_path / f"{name}.pdf"
        page.write_text(page_html, encoding="utf-8")
        chromium(tmp_path, f"--print-to-pdf={pdf}", "--no-pdf-header-footer", page.as_uri())
        pages[name] = len(re.findall(rb"/Type\s*/Page[^s]", pdf.read_bytes()))
    assert pages["folded"] == 1 and pages["printed"] > 1, pages  # 44 clauses' wording need pages
