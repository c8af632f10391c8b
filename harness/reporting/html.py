"""certificate.html: the readable, printable, self-contained report a lab hands over with the evidence.

One file, opened offline years from now, on screen or on paper: inline CSS (with a print stylesheet),
charts as inline SVG, no script, no fonts, images or stylesheets from elsewhere. Every text that comes
from the run (reasons, titles, device identity) is escaped — a device answers with arbitrary bytes.
The input is certificate.json (docs/certificate.md) plus the check records of checks.jsonl, which
carry the measurements and charts the certificate does not repeat. Most text is English; the Rules'
authoritative Russian wording is marked ``lang="ru"`` so screen readers and hyphenation get it right.
"""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import datetime
from html import escape
from typing import Any

from harness.reporting.clauses import CHAPTER_TITLES
from harness.reporting.html_style import CSS
from harness.reporting.records import CheckRecord
from harness.reporting.svg import render_chart_svg

VERDICT_ORDER = ("PASS", "FAIL", "INCONCLUSIVE", "FLAKY", "N/A", "NOT TESTED")
_CLASS = {"PASS": "v-pass", "FAIL": "v-fail", "INCONCLUSIVE": "v-inc", "FLAKY": "v-inc", "N/A": "v-grey",
          "NOT TESTED": "v-grey"}
_KIND_NOTE = {"documentary": "documentary", "mixed": "measured + documentary"}


def esc(value: Any) -> str:
    return escape("" if value is None else str(value), quote=True)


def _slug(*parts: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", "-".join(parts)).strip("-")


def clause_row_id(dut: str, clause: str, *, several_duts: bool) -> str:
    """``clause-95`` — or ``clause-<dut>-95`` when the certificate has several DUTs (ids must be unique)."""
    return _slug("clause", dut, clause) if several_duts else _slug("clause", clause)


def check_anchor(dut: str, check_id: str) -> str:
    """The id of a check's details; the same check id runs once per DUT, so the DUT is part of it."""
    return _slug("check", dut, check_id)


def badge(verdict: str, kind: str = "measured", *, big: bool = False) -> str:
    """A verdict badge; documentary verdicts read e.g. "PASS (documentary)" and are drawn dashed."""
    note = _KIND_NOTE.get(kind) if verdict != "NOT TESTED" else None
    cls = ["badge", _CLASS.get(verdict, "v-grey")] + (["doc"] if note else []) + (["big"] if big else [])
    text = f"{verdict} ({note})" if note else verdict
    return f'<span class="{" ".join(cls)}">{esc(text)}</span>'


def _clauses(dut: dict[str, Any]) -> list[dict[str, Any]]:
    rows = dut.get("clauses") or []
    if isinstance(rows, dict):  # verdicts.json style, keyed by clause
        return [{"clause": k, **v} for k, v in rows.items()]
    return list(rows)


def _duration(seconds: float) -> str:
    if seconds < 0.1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    m, s = divmod(round(seconds), 60)
    return f"{m} min {s:02d} s" if m < 60 else f"{m // 60} h {m % 60:02d} min"


def _run_duration(started: Any, finished: Any) -> str:
    try:
        a = datetime.fromisoformat(str(started).replace("Z", "+00:00"))
        b = datetime.fromisoformat(str(finished).replace("Z", "+00:00"))
    except ValueError:
        return ""
    return f" ({_duration((b - a).total_seconds())})" if b >= a else ""


def _facts(items: list[tuple[str, str]]) -> str:
    """A two-column fact list; values are already HTML."""
    return '<dl class="facts">' + "".join(f"<dt>{esc(k)}</dt><dd>{v}</dd>" for k, v in items) + "</dl>"


def _counts(counts: dict[str, int]) -> str:
    keys = [k for k in VERDICT_ORDER if k in counts] + [k for k in counts if k not in VERDICT_ORDER]
    return '<div class="counts">' + "".join(
        f'<span class="count">{badge(k)} <b>{int(counts[k])}</b></span>' for k in keys) + "</div>"


def _not_run(cert: dict[str, Any]) -> list[str]:
    duts = (cert.get("duts") or {}).values()
    return sorted({c for d in duts for row in _clauses(d) for c in row.get("not_run") or []})


# -- header and DUT identity ------------------------------------------------------------------------
def _header(cert: dict[str, Any], records: list[CheckRecord]) -> str:
    duts = cert.get("duts") or {}
    out = ['<header class="top">']
    seeded = {name: d.get("defects") for name, d in duts.items() if d.get("defects")}
    if seeded:
        which = "; ".join(f"{esc(n)}: {esc(', '.join(map(str, ds)))}" for n, ds in seeded.items())
        out.append('<div class="alert fail"><b>Harness self-test — not a certification.</b> Defects were seeded '
                   f"into the simulated DUT ({which}). Such a run shows that the harness catches those defects; "
                   "it says nothing about any real device.</div>")
    grade = cert.get("certification_grade")
    if not grade:
        why = []
        if cert.get("interrupted"):
            why.append("the run was interrupted before every check finished")
        not_run = _not_run(cert)
        if not_run:
            shown = ", ".join(not_run[:15]) + (f" and {len(not_run) - 15} more" if len(not_run) > 15 else "")
            why.append(f"{len(not_run)} applicable check(s) were deselected or not finished ({esc(shown)})")
        reason = "; ".join(why) or "not every applicable check ran"
        out.append(f'<div class="alert inc"><b>Not certification-grade:</b> {reason}. The verdicts below are '
                   "for the checks that ran.</div>")
    verdict = str(cert.get("verdict") or "NOT TESTED")
    lab = cert.get("lab") or {}
    lab_html = ("<br>".join(esc(lab.get(k)) for k in ("name", "address") if lab.get(k))
                + (f"<br>Accreditation: {esc(lab['accreditation'])}" if lab.get("accreditation") else "")
                ) if lab else '<span class="muted">no lab declared in the rig</span>'
    rig = cert.get("rig") or {}
    rig_html = esc(rig.get("name", ""))
    if rig.get("file"):
        rig_html += f' <span class="muted">({esc(rig["file"])})</span>'
    if rig.get("sha256"):
        rig_html += f'<br><span class="hash">sha256 {esc(rig["sha256"])}</span>'
    models = ", ".join(dict.fromkeys(f"{d.get('vendor', '')} {d.get('model', '')}".strip() or n
                                     for n, d in duts.items()))
    chapters = sorted({r.get("chapter") for d in duts.values() for r in _clauses(d)
                       if isinstance(r.get("chapter"), int)})
    span = f", chapters {chapters[0]}–{chapters[-1]}" if len(chapters) > 1 else ""
    out.append('<div class="title-row"><div><p class="kicker">tek-harness conformance certificate</p>'
               f"<h1>{esc(models) or 'No device under test'}</h1>"
               '<p class="sub">Tested against the Kazakhstan Rules for the unified state energy-management system '
               f"(order 355-n/k of 2025{span})</p></div>"
               f'<div class="overall"><div class="label">Overall verdict</div>{badge(verdict, big=True)}'
               f'<div class="grade {"ok" if grade else "not"}">'
               f'{"Certification-grade run" if grade else "Not certification-grade"}</div></div></div>')
    by_verdict: dict[str, int] = defaultdict(int)
    for r in records:
        by_verdict[r.verdict.value] += 1
    checks = ", ".join(f"{n} {v}" for v, n in sorted(by_verdict.items(), key=lambda kv: _order(kv[0])))
    out.append(_facts([
        ("Laboratory", lab_html),
        ("Rig", rig_html),
        ("Harness version", esc(cert.get("harness_version", ""))),
        ("Started", esc(cert.get("started", ""))),
        ("Finished", esc(cert.get("finished", "")) + esc(_run_duration(cert.get("started"), cert.get("finished")))
         + (' <span class="badge v-inc">interrupted</span>' if cert.get("interrupted") else "")),
        ("Checks run", f"{len(records)}" + (f" ({esc(checks)})" if checks else "")),
        ("Certificate format", esc(cert.get("format", ""))),
    ]))
    out.append('<h3>Clause verdicts, all DUTs</h3>' + _counts(cert.get("counts") or {})
               + '<p class="muted small">The overall verdict is taken over the clauses that have checks; clauses '
                 "outside the harness's scope or without a check are NOT TESTED and listed with the reason below."
                 "</p></header>")
    return "".join(out)


def _order(verdict: str) -> int:
    return VERDICT_ORDER.index(verdict) if verdict in VERDICT_ORDER else len(VERDICT_ORDER)


def _dut_section(name: str, dut: dict[str, Any]) -> str:
    rows = _clauses(dut)
    counts: dict[str, int] = defaultdict(int)
    for r in rows:
        counts[str(r.get("verdict", "NOT TESTED"))] += 1
    defects = dut.get("defects") or []
    profile = esc(dut.get("profile", "")) + (
        f'<br><span class="hash">sha256 {esc(dut["profile_sha256"])}</span>' if dut.get("profile_sha256") else "")
    facts = [("Vendor", esc(dut.get("vendor", ""))), ("Model", esc(dut.get("model", ""))),
             ("Kind", esc(str(dut.get("kind", "")).replace("_", " "))),
             ("Serial number", esc(dut.get("serial_number", ""))),
             ("Firmware", esc(dut.get("firmware_version", ""))), ("Profile", profile),
             ("Seeded defects", ('<b class="fail-text">' + esc(", ".join(map(str, defects)))
                                 + " — harness self-test, not a certification</b>") if defects else "none")]
    return (f'<section class="dut" id="{_slug("dut", name)}"><div class="dut-head"><h3>DUT <code>{esc(name)}</code>'
            f"</h3>{badge(str(dut.get('verdict') or 'NOT TESTED'))}</div>"
            + _facts(facts) + _counts(dict(counts)) + "</section>")


# -- clause matrix ----------------------------------------------------------------------------------
def _chapter_title(cert: dict[str, Any], chapter: Any) -> str:
    titles = cert.get("chapters") or {}
    title = titles.get(str(chapter)) or titles.get(chapter)
    if not title and isinstance(chapter, int):
        title = CHAPTER_TITLES.get(chapter)
    return f"Chapter {chapter}. {title}" if title else (f"Chapter {chapter}" if chapter else "Other clauses")


def _checks_cell(dut: str, row: dict[str, Any], have: set[tuple[str, str]]) -> str:
    items = []
    for c in row.get("checks") or []:
        cid = str(c.get("id", ""))
        label = f'<a href="#{check_anchor(dut, cid)}">{esc(cid)}</a>' if (dut, cid) in have else esc(cid)
        kind = ' <span class="tag">doc</span>' if c.get("kind") == "documentary" else ""
        items.append(f'<li>{label}{kind} <span class="vt {_CLASS.get(c.get("verdict"), "v-grey")}">'
                     f'{esc(c.get("verdict", ""))}</span></li>')
    items += [f'<li>{esc(c)} <span class="vt v-grey">not run</span></li>' for c in row.get("not_run") or []]
    return f'<ul class="checks">{"".join(items)}</ul>' if items else '<span class="muted">—</span>'


def _matrix(cert: dict[str, Any], name: str, dut: dict[str, Any], several: bool, have: set[tuple[str, str]]) -> str:
    head = ('<thead><tr><th class="c-no">Clause</th><th class="c-ru">Wording of the Rules (ru)</th>'
            '<th class="c-gist">Gist (en)</th><th class="c-kind">Kind</th><th class="c-v">Verdict</th>'
            '<th class="c-checks">Checks</th></tr></thead>')
    body, chapter = [], object()
    for row in _clauses(dut):
        if row.get("chapter") != chapter:
            chapter = row.get("chapter")
            body.append(f'<tr class="chapter"><th colspan="6">{esc(_chapter_title(cert, chapter))}</th></tr>')
        verdict = str(row.get("verdict") or "NOT TESTED")
        reason = (f'<div class="why">{esc(row["reason"])}</div>'
                  if row.get("reason") and verdict in ("FAIL", "INCONCLUSIVE", "N/A") else "")
        ru = f'<td class="ru" lang="ru">{esc(row["text_ru"])}</td>' if row.get("text_ru") else \
            '<td class="ru muted">(wording not yet quoted in the catalogue)</td>'
        kind = str(row.get("kind", ""))
        row_id = clause_row_id(name, str(row.get("clause")), several_duts=several)
        body.append(f'<tr id="{row_id}" class="row r-{_CLASS.get(verdict, "v-grey")[2:]}">'
                    f'<td class="no">{esc(row.get("clause"))}</td>{ru}'
                    f'<td class="gist">{esc(row.get("gist", ""))}</td><td class="kind k-{_slug(kind)}">{esc(kind)}</td>'
                    f'<td class="verdict">{badge(verdict, str(row.get("verdict_kind", "measured")))}{reason}</td>'
                    f"<td>{_checks_cell(name, row, have)}</td></tr>")
    return (f'<section class="matrix-section page-break"><h2>Clause matrix — DUT <code>{esc(name)}</code></h2>'
            f'<table class="matrix" id="{_slug("clause-matrix", name)}">{head}<tbody>{"".join(body)}</tbody>'
            "</table></section>")


# -- why not PASS -----------------------------------------------------------------------------------
def _clause_link(name: str, clause: str, several: bool) -> str:
    return f'<a href="#{clause_row_id(name, clause, several_duts=several)}">cl.&nbsp;{esc(clause)}</a>'


def _why_not(cert: dict[str, Any], several: bool) -> str:
    out = ['<section class="why-not page-break"><h2>Why not PASS</h2>'
           '<p class="muted small">Every verdict other than PASS, with the reason the harness recorded. FLAKY '
           "checks failed, then passed on a re-run, and make their clause INCONCLUSIVE.</p>"]
    for name, dut in (cert.get("duts") or {}).items():
        rows = _clauses(dut)
        out.append(f"<h3>DUT <code>{esc(name)}</code></h3>")
        shown = False
        for verdict in ("FAIL", "INCONCLUSIVE", "N/A"):
            hits = [r for r in rows if r.get("verdict") == verdict]
            if not hits:
                continue
            shown = True
            out.append(f'<h4>{badge(verdict)} {len(hits)} clause(s)</h4><ul class="reasons">')
            for r in hits:
                out.append(f'<li>{_clause_link(name, str(r.get("clause")), several)} — {esc(r.get("gist", ""))}'
                           f'<div class="why">{esc(r.get("reason") or "(no reason recorded)")}</div>'
                           + _check_reasons(name, r) + "</li>")
            out.append("</ul>")
        incomplete = [r for r in rows if r.get("not_run") and r.get("verdict") == "PASS"]
        if incomplete:
            shown = True
            out.append('<h4>PASS for the checks that ran, but incomplete</h4><ul class="reasons">' + "".join(
                f'<li>{_clause_link(name, str(r.get("clause")), several)} — not run: {esc(", ".join(r["not_run"]))}'
                "</li>" for r in incomplete) + "</ul>")
        untested = [r for r in rows if r.get("verdict") == "NOT TESTED"]
        if untested:
            shown = True
            groups: dict[str, list[str]] = defaultdict(list)
            for r in untested:
                groups[str(r.get("reason") or "no reason recorded")].append(str(r.get("clause")))
            out.append(f'<h4>{badge("NOT TESTED")} {len(untested)} clause(s), by reason</h4><ul class="reasons">')
            ordered = sorted(groups.items(), key=lambda g: "out of scope" not in g[0].lower())  # then Rules order
            out += [f'<li><span class="reason">{esc(reason)}</span> — '
                    + ", ".join(_clause_link(name, c, several) for c in clauses) + "</li>"
                    for reason, clauses in ordered]
            out.append("</ul>")
        if not shown:
            out.append('<p>Every clause of this DUT passed.</p>')
    return "".join(out) + "</section>"


def _check_reasons(name: str, row: dict[str, Any]) -> str:
    items = []
    for c in row.get("checks") or []:
        if c.get("verdict") == "PASS":
            continue
        reason = str(c.get("reason") or "")
        reason = "" if reason == row.get("reason") else reason  # said once, just above
        attempts = "".join(f'<li>earlier attempt: {esc(a.get("verdict", ""))} — {esc(a.get("reason", ""))}</li>'
                           for a in c.get("attempts") or [])
        items.append(f'<li><a href="#{check_anchor(name, str(c.get("id")))}">{esc(c.get("id"))}</a> '
                     f'<span class="vt {_CLASS.get(c.get("verdict"), "v-grey")}">{esc(c.get("verdict"))}</span> '
                     f'{esc(reason)}' + (f"<ul>{attempts}</ul>" if attempts else "") + "</li>")
    items += [f"<li>{esc(c)} — not run (deselected or unfinished)</li>" for c in row.get("not_run") or []]
    return f'<ul class="check-reasons">{"".join(items)}</ul>' if items else ""


# -- check details ----------------------------------------------------------------------------------
def _value(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    return str(v)


def _measurements(rec: CheckRecord) -> str:
    if not rec.measurements:
        return '<p class="muted small">No measurements recorded.</p>'
    rows = "".join(
        f'<tr class="{"" if m.passed else "failed"}"><td>{esc(m.name)}</td><td class="num">{esc(_value(m.measured))}'
        f'</td><td class="num">{esc(m.limit)}</td><td>{esc(m.unit or "")}</td>'
        f'<td class="{"ok-text" if m.passed else "fail-text"}">{"pass" if m.passed else "FAIL"}</td>'
        f"<td>{esc(m.note)}</td></tr>" for m in rec.measurements)
    return ('<table class="meas"><thead><tr><th class="m-name">Measurement</th><th class="m-val">Measured</th>'
            '<th class="m-lim">Limit</th><th class="m-unit">Unit</th><th class="m-res">Result</th>'
            f'<th class="m-note">Note</th></tr></thead><tbody>{rows}</tbody></table>')


def _chart(chart: Any) -> str:
    try:
        svg = render_chart_svg(chart)
    except Exception as exc:  # a drawing bug must not cost the lab its whole report
        return f'<p class="muted">Chart "{esc(chart.title)}" could not be drawn: {esc(exc)}</p>'
    return f'<figure class="chart">{svg}</figure>'


def _check(rec: CheckRecord, several: bool) -> str:
    clauses = ", ".join(_clause_link(rec.dut, c, several) for c in rec.clauses)
    took = _duration(rec.duration_s) if rec.finished else "not recorded"
    facts = [("DUT", f"<code>{esc(rec.dut)}</code>"), ("suite", esc(rec.suite)), ("clauses", clauses),
             ("kind", esc(rec.kind)), ("duration", esc(took))]
    meta = '<p class="meta">' + " · ".join(f'<span class="muted">{k}</span> {v}' for k, v in facts) + "</p>"
    attempts = "".join(f'<li>attempt {i}: {badge(a.verdict.value)} {esc(a.reason)}</li>'
                       for i, a in enumerate(rec.attempts, 1))
    reason = f'<p class="why">{esc(rec.reason)}</p>' if rec.reason else ""
    return (f'<article class="check" id="{check_anchor(rec.dut, rec.id)}"><div class="check-head">'
            f'<span class="cid">{esc(rec.id)}</span> <span class="ctitle">{esc(rec.title)}</span> '
            f"{badge(rec.verdict.value, rec.kind)}</div>{meta}{reason}"
            + (f'<div class="attempts"><b>Earlier attempts</b> (re-run after a failure)<ul>{attempts}</ul></div>'
               if attempts else "")
            + _measurements(rec) + "".join(_chart(c) for c in rec.charts) + "</article>")


def _details(cert: dict[str, Any], records: list[CheckRecord], several: bool) -> str:
    order = {name: i for i, name in enumerate(cert.get("duts") or {})}
    recs = sorted(records, key=lambda r: (order.get(r.dut, len(order)), r.dut, r.id))
    out = ['<section class="details page-break"><h2>Check details</h2>']
    if not recs:
        out.append("<p>No check records (checks.jsonl is empty).</p>")
    dut = None
    for r in recs:
        if r.dut != dut:
            dut = r.dut
            out.append(f"<h3>DUT <code>{esc(dut)}</code></h3>")
        out.append(_check(r, several))
    return "".join(out) + "</section>"


# -- the page ---------------------------------------------------------------------------------------
def _allure(allure_report: str | None) -> str:
    if allure_report:
        return (f'<p>Step-by-step test log: <a href="{esc(allure_report)}">{esc(allure_report)}</a> (the Allure '
                "report, a single file next to this one).</p>")
    return ("<p>The Allure report (step-by-step test log) was not built. Install the Allure command line "
            "(<code>npm install -g allure</code>) and run <code>harness report OUTDIR</code> to build it from "
            "<code>allure-results/</code>.</p>")


def render_certificate_html(certificate: dict[str, Any], records: list[CheckRecord], *,
                            allure_report: str | None = None) -> str:
    """The whole certificate.html: header, DUTs, clause matrices, reasons, check details with charts.

    ``allure_report`` is the file name of the one-file Allure report relative to this page; an absolute
    URL is refused because the page promises to reference nothing outside the output directory.
    """
    if allure_report and (re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", allure_report)
                          or allure_report.startswith(("/", "\\"))):
        raise ValueError(f"allure_report must be a relative file name, not {allure_report!r}")
    duts = certificate.get("duts") or {}
    several = len(duts) > 1
    have = {(r.dut, r.id) for r in records}
    title = f"Certificate — {', '.join(duts) or 'no DUT'} — {certificate.get('verdict', 'NOT TESTED')}"
    parts = [
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta name="generator" content="tek-harness {esc(certificate.get("harness_version", ""))}">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body><main>",
        _header(certificate, records),
        '<section class="duts"><h2>Devices under test</h2>'
        + "".join(_dut_section(n, d) for n, d in duts.items()) + "</section>",
        "".join(_matrix(certificate, n, d, several, have) for n, d in duts.items()),
        _why_not(certificate, several),
        _details(certificate, records, several),
        '<section class="evidence"><h2>Evidence</h2>' + _allure(allure_report),
        '<footer><p>The evidence files are listed with SHA-256 digests in <code>manifest.json</code> and signed in '
        "<code>certificate.sig.json</code>; check with <code>harness verify OUTDIR</code>.</p>"
        f'<p class="muted small">Generated by tek-harness {esc(certificate.get("harness_version", ""))} from '
        "certificate.json and checks.jsonl.</p></footer></section></main></body></html>\n",
    ]
    return "".join(parts)
