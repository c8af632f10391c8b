"""certificate.html: the readable, printable, self-contained report a lab hands over with the evidence.

One file, opened offline years from now, on screen or on paper: inline CSS (with a print stylesheet),
charts as inline SVG, no script, no fonts, images or stylesheets from elsewhere. Every text that comes
from the run (reasons, titles, device identity) is escaped — a device answers with arbitrary bytes.
The input is certificate.json (docs/certificate.md) plus the check records of checks.jsonl, which
carry the measurements and charts the certificate does not repeat.

The order is the reader's: the verdict and, per DUT, why it is not PASS (html_first.py) on the first
screen; the run's facts; the clause matrix of the clauses that were judged (or could have been); the
check details with their evidence; last, folded by reason, the clauses that cannot apply to a device
of this kind. The page is written in the language asked for (i18n.py; English by default); the
Rules' authoritative Russian wording is marked ``lang="ru"``.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

from harness.reporting import localize
from harness.reporting.clauses import CHAPTER_TITLES
from harness.reporting.html_common import (
    CLASS,
    badge,
    cannot_apply,
    check_anchor,
    clause_link,
    clause_row_id,
    clauses_of,
    data,
    duration,
    english_mark,
    esc,
    slug,
    verdict_text,
)
from harness.reporting.html_first import alerts, dut_identity, first_screen, run_facts, title_row
from harness.reporting.html_style import CSS
from harness.reporting.i18n import CLAUSE_KINDS, _, current, language, ngettext, pgettext, verdict_name
from harness.reporting.records import CheckRecord
from harness.reporting.svg import render_chart_svg

__all__ = ["check_anchor", "clause_row_id", "render_certificate_html"]


# -- clause matrix ----------------------------------------------------------------------------------
def _chapter_title(cert: dict[str, Any], chapter: Any) -> str:
    titles = cert.get("chapters") or {}
    title = titles.get(str(chapter)) or titles.get(chapter)
    if not title and isinstance(chapter, int):
        title = CHAPTER_TITLES.get(chapter)
    if title:
        return _("Chapter {n}. {title}").format(n=chapter, title=_(title))
    return _("Chapter {n}").format(n=chapter) if chapter else _("Other clauses")


def _kind(kind: str) -> str:
    return esc(_(CLAUSE_KINDS[kind])) if kind in CLAUSE_KINDS else data(kind)


def _ru(row: dict[str, Any]) -> str:
    if row.get("text_ru"):
        return f'<td class="ru" lang="ru">{esc(row["text_ru"])}</td>'
    return f'<td class="ru muted">{_("(wording not yet quoted in the catalogue)")}</td>'


def _checks_cell(dut: str, row: dict[str, Any], have: set[tuple[str, str]]) -> str:
    items = []
    for c in row.get("checks") or []:
        cid = str(c.get("id", ""))
        label = f'<a href="#{check_anchor(dut, cid)}">{esc(cid)}</a>' if (dut, cid) in have else esc(cid)
        kind = f' <span class="tag">{pgettext("tag", "doc")}</span>' if c.get("kind") == "documentary" else ""
        items.append(f'<li>{label}{kind} {verdict_text(str(c.get("verdict", "")))}</li>')
    items += [f'<li>{esc(c)} <span class="vt v-grey">{_("not run")}</span></li>' for c in row.get("not_run") or []]
    return f'<ul class="checks">{"".join(items)}</ul>' if items else '<span class="muted">—</span>'


def _matrix(cert: dict[str, Any], name: str, dut: dict[str, Any], several: bool, have: set[tuple[str, str]]) -> str:
    """The clauses that were judged, and those that could have been (checks deselected or unfinished)."""
    # The English gist only on an English page: in another language the Rules' own wording beside it says it.
    gists = current() == "en"
    head = (f'<thead><tr><th class="c-no">{_("Clause")}</th><th class="c-ru">{_("Wording of the Rules (ru)")}</th>'
            + (f'<th class="c-gist">{_("Gist (en)")}</th>' if gists else "") + f'<th class="c-kind">{_("Kind")}</th>'
            f'<th class="c-v">{_("Verdict")}</th><th class="c-checks">{_("Checks")}</th></tr></thead>')
    columns = 6 if gists else 5
    body, chapter = [], object()
    for row in clauses_of(dut):
        if cannot_apply(row):
            continue
        if row.get("chapter") != chapter:
            chapter = row.get("chapter")
            body.append(f'<tr class="chapter"><th colspan="{columns}">{esc(_chapter_title(cert, chapter))}</th></tr>')
        verdict = str(row.get("verdict") or "NOT TESTED")
        reason = (data(row["reason"], "div", "why")
                  if row.get("reason") and verdict in ("FAIL", "INCONCLUSIVE", "N/A", "NOT TESTED") else "")
        row_id = clause_row_id(name, str(row.get("clause")), several_duts=several)
        body.append(f'<tr id="{row_id}" class="row r-{CLASS.get(verdict, "v-grey")[2:]}">'
                    f'<td class="no">{esc(row.get("clause"))}</td>{_ru(row)}'
                    + (f'<td class="gist">{data(row.get("gist", ""))}</td>' if gists else "")
                    + f'<td class="kind k-{slug(str(row.get("kind", "")))}">{_kind(str(row.get("kind", "")))}</td>'
                    f'<td class="verdict">{badge(verdict, str(row.get("verdict_kind", "measured")))}{reason}</td>'
                    f"<td>{_checks_cell(name, row, have)}</td></tr>")
    if not body:
        body.append(f'<tr><td colspan="{columns}" class="muted">{_("No clause was judged.")}</td></tr>')
    return (f'<section class="matrix-section page-break"><h2>{_("Clause matrix")} — {_("DUT")} '
            f'<code>{esc(name)}</code></h2>'
            f'<table class="matrix" id="{slug("clause-matrix", name)}">{head}<tbody>{"".join(body)}</tbody>'
            "</table></section>")


# -- clauses that cannot apply -----------------------------------------------------------------------
def _cannot_apply(name: str, dut: dict[str, Any], several: bool) -> str:
    """Out of scope, or no check for this kind of device: one folded group each, the clause numbers in view.

    ``<details>`` needs no script; on paper a folded group still shows its reason and clause numbers.
    A reason shared by the whole group is said once under its summary, otherwise on each clause's row.
    """
    groups: dict[bool, list[dict[str, Any]]] = defaultdict(list)
    for row in clauses_of(dut):
        if cannot_apply(row):
            groups[str(row.get("kind")) == "out of scope"].append(row)
    if not groups:
        return ""
    out = [f'<h3>{_("DUT")} <code>{esc(name)}</code></h3>']
    for out_of_scope in (True, False):
        rows = groups.get(out_of_scope)
        if not rows:
            continue
        label = _(CLAUSE_KINDS["out of scope"]) if out_of_scope else _("no check for this kind of device")
        reasons = {str(r.get("reason") or "") for r in rows}
        shared = reasons.pop() if len(reasons) == 1 else None
        table = "".join(
            f'<tr id="{clause_row_id(name, str(r.get("clause")), several_duts=several)}">'
            f'<td class="no">{esc(r.get("clause"))}</td>{_ru(r)}<td class="gist">'
            + (data(r.get("gist", "")) if current() == "en" else "")
            + ("" if shared is not None else data(r.get("reason") or "", "div", "why")) + "</td></tr>"
            for r in rows)
        numbers = ", ".join(esc(r.get("clause")) for r in rows)
        out.append(f'<details class="na-group" id="{slug("cannot-apply", name, "scope" if out_of_scope else "kind")}">'
                   f"<summary><b>{esc(label)}</b> — "
                   + ngettext("{n} clause", "{n} clauses", len(rows)).format(n=len(rows))
                   + f': <span class="nums">{numbers}</span>'
                   + (data(shared, "div", "why") if shared else "") + "</summary>"
                   f'<table class="matrix"><thead><tr><th class="c-no">{_("Clause")}</th>'
                   f'<th class="c-ru">{_("Wording of the Rules (ru)")}</th><th>{_("Gist (en)")}</th></tr></thead>'
                   f"<tbody>{table}</tbody></table></details>")
    return "".join(out)


# -- check details ----------------------------------------------------------------------------------
def _value(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, bool):
        return _("yes") if v else _("no")
    return str(v)


def _measurements(rec: CheckRecord) -> str:
    if not rec.measurements:
        return f'<p class="muted small">{_("No measurements recorded.")}</p>'
    rows = "".join(
        f'<tr class="{"" if m.passed else "failed"}"><td>{data(m.name)}</td><td class="num">{data(_value(m.measured))}'
        f'</td><td class="num">{data(m.limit)}</td><td>{esc(m.unit or "")}</td>'
        f'<td class="{"ok-text" if m.passed else "fail-text"}">'
        f'{pgettext("measurement", "pass") if m.passed else pgettext("measurement", "FAIL")}</td>'
        f"<td>{data(m.note)}</td></tr>" for m in rec.measurements)
    return (f'<table class="meas"><thead><tr><th class="m-name">{_("Measurement")}</th>'
            f'<th class="m-val">{_("Measured")}</th><th class="m-lim">{_("Limit")}</th>'
            f'<th class="m-unit">{_("Unit")}</th><th class="m-res">{_("Result")}</th>'
            f'<th class="m-note">{_("Note")}</th></tr></thead><tbody>{rows}</tbody></table>')


def _chart(chart: Any) -> str:
    try:
        svg = render_chart_svg(chart)
    except Exception as exc:  # a drawing bug must not cost the lab its whole report
        return (f'<p class="muted">{_("A chart could not be drawn:")} {data(chart.title)} — {data(exc)}</p>')
    return f'<figure class="chart"{english_mark(chart.title)}>{svg}</figure>'


def _check(rec: CheckRecord, several: bool) -> str:
    clauses = ", ".join(clause_link(rec.dut, c, several) for c in rec.clauses)
    took = duration(rec.duration_s) if rec.finished else _("not recorded")
    kind = pgettext("verdict kind", "documentary") if rec.kind == "documentary" else pgettext("verdict kind",
                                                                                              "measured")
    meta_items = [(_("DUT"), f"<code>{esc(rec.dut)}</code>"), (_("suite"), f"<code>{esc(rec.suite)}</code>"),
                  (_("clauses"), clauses), (_("kind"), esc(kind)), (_("duration"), esc(took))]
    meta = '<p class="meta">' + " · ".join(f'<span class="muted">{k}</span> {v}' for k, v in meta_items) + "</p>"
    attempts = "".join(f'<li>{_("attempt {n}:").format(n=i)} {badge(a.verdict.value)} {data(a.reason)}</li>'
                       for i, a in enumerate(rec.attempts, 1))
    reason = data(rec.reason, "p", "why") if rec.reason else ""
    return (f'<article class="check" id="{check_anchor(rec.dut, rec.id)}"><div class="check-head">'
            f'<span class="cid">{esc(rec.id)}</span> {data(rec.title, cls="ctitle")} '
            f"{badge(rec.verdict.value, rec.kind)}</div>{meta}{reason}"
            + (f'<div class="attempts"><b>{_("Earlier attempts")}</b> ({_("re-run after a failure")})'
               f"<ul>{attempts}</ul></div>" if attempts else "")
            + _measurements(rec) + "".join(_chart(c) for c in rec.charts) + "</article>")


def _details(cert: dict[str, Any], records: list[CheckRecord], several: bool) -> str:
    order = {name: i for i, name in enumerate(cert.get("duts") or {})}
    recs = sorted(records, key=lambda r: (order.get(r.dut, len(order)), r.dut, r.id))
    out = [f'<section class="details page-break"><h2>{_("Check details")}</h2>']
    if not recs:
        out.append(f'<p>{_("No check records (checks.jsonl is empty).")}</p>')
    dut = None
    for r in recs:
        if r.dut != dut:
            dut = r.dut
            out.append(f'<h3>{_("DUT")} <code>{esc(dut)}</code></h3>')
        out.append(_check(r, several))
    return "".join(out) + "</section>"


# -- the page ---------------------------------------------------------------------------------------
def _allure(allure_report: str | None) -> str:
    if allure_report:
        return (f'<p>{_("Step-by-step test log:")} <a href="{esc(allure_report)}"><code>{esc(allure_report)}</code>'
                f'</a> ({_("the Allure report, a single file next to this one")}).</p>')
    return ("<p>" + _("The Allure report (step-by-step test log) was not built. Install the Allure command line "
                      "({install}) and run {report} to build it from {results}.").format(
        install="<code>npm install -g allure</code>", report="<code>harness report OUTDIR</code>",
        results="<code>allure-results/</code>") + "</p>")


def render_certificate_html(certificate: dict[str, Any], records: list[CheckRecord], *,
                            allure_report: str | None = None, lang: str | None = None) -> str:
    """The whole certificate.html, in ``lang`` (default: the certificate's ``language``, else English).

    ``allure_report`` is the file name of the one-file Allure report relative to this page; an absolute
    URL is refused because the page promises to reference nothing outside the output directory.
    """
    if allure_report and (re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", allure_report)
                          or allure_report.startswith(("/", "\\"))):
        raise ValueError(f"allure_report must be a relative file name, not {allure_report!r}")
    with language(lang or certificate.get("language")) as code:
        return _page(localize.view(certificate), [localize.record(r) for r in records], allure_report, code)


def _page(certificate: dict[str, Any], records: list[CheckRecord], allure_report: str | None, lang: str) -> str:
    duts = certificate.get("duts") or {}
    several = len(duts) > 1
    have = {(r.dut, r.id) for r in records}
    title = " — ".join((_("Certificate"), ", ".join(duts) or _("no DUT"),
                        verdict_name(str(certificate.get("verdict", "NOT TESTED")))))
    closing = "".join(_cannot_apply(n, d, several) for n, d in duts.items())
    parts = [
        f'<!DOCTYPE html>\n<html lang="{esc(lang)}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta name="generator" content="tek-harness {esc(certificate.get("harness_version", ""))}">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body><main>",
        '<header class="top">', alerts(certificate), title_row(certificate),
        "".join(first_screen(n, d, certificate, several, have) for n, d in duts.items()), "</header>",
        run_facts(certificate, records),
        f'<section class="duts"><h2>{_("Devices under test")}</h2>'
        + "".join(dut_identity(n, d) for n, d in duts.items()) + "</section>",
        "".join(_matrix(certificate, n, d, several, have) for n, d in duts.items()),
        _details(certificate, records, several),
        (f'<section class="cannot-apply page-break" id="cannot-apply"><h2>{_("Clauses that cannot apply")}</h2>'
         '<p class="muted small">' + _("Clauses of the Rules that no check of this harness judges for a device of "
                                      "this kind: out of scope (duties of the state information system or its "
                                      "operators), or no check for this kind of device. Open a group for the "
                                      "wording.") + f"</p>{closing}</section>") if closing else "",
        f'<section class="evidence"><h2>{_("Evidence")}</h2>' + _allure(allure_report),
        "<footer><p>" + _("The evidence files are listed with SHA-256 digests in {manifest} and signed in "
                          "{signature}; check with {verify}.").format(
            manifest="<code>manifest.json</code>", signature="<code>certificate.sig.json</code>",
            verify="<code>harness verify OUTDIR</code>") + "</p>"
        '<p class="muted small">' + _("Generated by tek-harness {version} from {certificate} and {checks}.").format(
            version=esc(certificate.get("harness_version", "")), certificate="<code>certificate.json</code>",
            checks="<code>checks.jsonl</code>")
        + "</p>"
        "</footer></section></main></body></html>\n",
    ]
    return "".join(parts)
