"""The first screen of certificate.html: the verdict, and per DUT why it is not PASS (or what PASS covers).

The reader's first question — "what is wrong, and is it the device or the paperwork?" — is answered
before any scrolling: each FAIL and INCONCLUSIVE clause (FLAKY checks make their clause INCONCLUSIVE)
with the first finding of each problem check, whether it was measured or documentary, and a link to
the check's evidence further down. The run's facts (lab, rig, times) follow; they matter less.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from harness.reporting.html_common import (
    PROBLEMS,
    badge,
    check_anchor,
    clause_link,
    clauses_of,
    counts_html,
    data,
    esc,
    facts,
    order,
    run_duration,
    slug,
    verdict_text,
)
from harness.reporting.i18n import _, ngettext, pgettext
from harness.reporting.reasons import one_line
from harness.reporting.records import CheckRecord


def _not_run(cert: dict[str, Any]) -> list[str]:
    duts = (cert.get("duts") or {}).values()
    return sorted({c for d in duts for row in clauses_of(d) for c in row.get("not_run") or []})


def alerts(cert: dict[str, Any]) -> str:
    """Seeded defects and a run that is not certification-grade: said before anything else."""
    out = []
    seeded = {name: d.get("defects") for name, d in (cert.get("duts") or {}).items() if d.get("defects")}
    if seeded:
        which = "; ".join(f"<code>{esc(n)}</code>: <code>{esc(', '.join(map(str, ds)))}</code>"
                          for n, ds in seeded.items())
        out.append(f'<div class="alert fail"><b>{_("Harness self-test — not a certification.")}</b> '
                   + _("Defects were seeded into the simulated DUT ({which}); such a run shows that the harness "
                       "catches them and says nothing about any real device.").format(which=which) + "</div>")
    if not cert.get("certification_grade"):
        why = []
        if cert.get("interrupted"):
            why.append(_("the run was interrupted before every check finished"))
        not_run = _not_run(cert)
        if not_run:
            shown = ", ".join(not_run[:15])
            if len(not_run) > 15:
                shown += " " + _("and {n} more").format(n=len(not_run) - 15)
            why.append(ngettext("{n} applicable check was deselected or not finished ({ids})",
                                "{n} applicable checks were deselected or not finished ({ids})",
                                len(not_run)).format(n=len(not_run), ids=f"<code>{esc(shown)}</code>"))
        reason = "; ".join(why) or _("not every applicable check ran")
        out.append(f'<div class="alert inc"><b>{_("Not certification-grade:")}</b> {reason}. '
                   + _("The verdicts are for the checks that ran.") + "</div>")
    return "".join(out)


def title_row(cert: dict[str, Any]) -> str:
    duts = cert.get("duts") or {}
    verdict = str(cert.get("verdict") or "NOT TESTED")
    grade = cert.get("certification_grade")
    models = ", ".join(dict.fromkeys(f"{d.get('vendor') or ''} {d.get('model') or ''}".strip() or n
                                     for n, d in duts.items()))
    chapters = sorted({r.get("chapter") for d in duts.values() for r in clauses_of(d)
                       if isinstance(r.get("chapter"), int)})
    span = (", " + _("chapters {first}–{last}").format(first=chapters[0], last=chapters[-1])) \
        if len(chapters) > 1 else ""
    return ('<div class="title-row"><div><p class="kicker">' + _("tek-harness conformance certificate") + "</p>"
            f"<h1>{esc(models) if models else _('No device under test')}</h1>"
            '<p class="sub">' + _("Tested against the Rules for the unified state energy-management system of "
                                  "the Republic of Kazakhstan (order 355-n/k of 2025{span})").format(span=span)
            + "</p></div>"
            f'<div class="overall"><div class="label">{_("Overall verdict")}</div>{badge(verdict, big=True)}'
            f'<div class="grade {"ok" if grade else "not"}">'
            f'{_("Certification-grade run") if grade else _("Not certification-grade")}</div></div></div>')


#: More problem clauses than this and each takes one line (no gist, its one problem check inline), so that
#: about twice as many fit on the first screen; fewer and the clause's gist is shown too.
ROOMY_UP_TO = 5


def _check_line(name: str, c: dict[str, Any], have: set[tuple[str, str]], *, verdict: bool = True) -> str:
    cid = str(c.get("id", ""))
    kind = pgettext("verdict kind", "documentary") if c.get("kind") == "documentary" \
        else pgettext("verdict kind", "measured")
    reason = str(c.get("reason") or "")
    attempts = c.get("attempts") or []
    if c.get("verdict") == "FLAKY" and attempts:  # the failure is the news, not the later pass
        text = (esc(_("failed, then passed on a re-run; first failure:")) + " "
                + data(one_line(str(attempts[0].get("reason") or ""), cid)))
    else:
        text = data(one_line(reason, cid) or _("no reason recorded"))
    evidence = (f' <a class="ev" href="#{check_anchor(name, cid)}">{_("evidence")}&nbsp;↓</a>'
                if (name, cid) in have else "")
    shown = f" {verdict_text(str(c.get('verdict')))}" if verdict else ""
    return (f'<span class="cid">{esc(cid)}</span>{shown} '
            f'<span class="tag">{esc(kind)}</span> <span class="line">{text}</span>{evidence}')


def _problem_clause(name: str, row: dict[str, Any], several: bool, have: set[tuple[str, str]],
                    compact: bool) -> str:
    checks = sorted((c for c in row.get("checks") or [] if c.get("verdict") in PROBLEMS),
                    key=lambda c: (order(str(c.get("verdict"))), str(c.get("id"))))
    head = (f'{badge(str(row.get("verdict")), str(row.get("verdict_kind", "measured")))} '
            f'<b>{clause_link(name, str(row.get("clause")), several)}</b>')
    if compact and len(checks) == 1 and checks[0].get("verdict") == row.get("verdict"):
        return f'<li class="compact">{head} {_check_line(name, checks[0], have, verdict=False)}</li>'
    lines = "".join(f"<li>{_check_line(name, c, have)}</li>" for c in checks)
    if not lines:  # a verdict without a problem check (e.g. inconclusive for checks not run)
        lines = f'<li><span class="line">{data(one_line(str(row.get("reason") or "")))}</span></li>'
    gist = "" if compact else " " + data(row.get("gist", ""), cls="gist")
    return f'<li><div class="why-clause">{head}{gist}</div><ul class="why-checks">{lines}</ul></li>'


def first_screen(name: str, dut: dict[str, Any], cert: dict[str, Any], several: bool,
                 have: set[tuple[str, str]]) -> str:
    """One DUT: identity in a line, then why not PASS — or, for a PASS, what it covers."""
    rows = clauses_of(dut)
    verdict = str(dut.get("verdict") or "NOT TESTED")
    ident = " · ".join(x for x in (
        esc(f"{dut.get('vendor') or ''} {dut.get('model') or ''}".strip()),
        (_("s/n {serial}").format(serial=esc(dut["serial_number"])) if dut.get("serial_number") else ""),
        (_("firmware {version}").format(version=esc(dut["firmware_version"])) if dut.get("firmware_version")
         else "")) if x)
    out = [f'<section class="first" id="{slug("first", name)}"><div class="dut-head">'
           f'<h2>{_("DUT")} <code>{esc(name)}</code></h2>{badge(verdict)}'
           f'<span class="muted">{ident}</span></div>']
    problems = sorted((r for r in rows if r.get("verdict") in PROBLEMS),
                      key=lambda r: order(str(r.get("verdict"))))
    if problems:
        out.append(f'<h3 class="why-head">{_("Why not PASS")}</h3><ul class="why-list">'
                   + "".join(_problem_clause(name, r, several, have, len(problems) > ROOMY_UP_TO)
                             for r in problems) + "</ul>")
    incomplete = [r for r in rows if r.get("not_run") and r.get("verdict") != "NOT TESTED"]
    untested = [r for r in rows if r.get("not_run") and r.get("verdict") == "NOT TESTED"]
    for hits, label in ((incomplete, _("Verdict for the checks that ran only; not run:")),
                        (untested, _("Not tested, checks deselected or not finished:"))):
        if hits:
            out.append(f'<p class="note">{label} ' + "; ".join(
                f'{clause_link(name, str(r.get("clause")), several)} (<code>{esc(", ".join(r["not_run"]))}</code>)'
                for r in hits) + "</p>")
    not_applicable = [r for r in rows if r.get("verdict") == "N/A"]
    if not_applicable:
        out.append(f'<p class="note">{_("Not applicable to this device, as its checks found:")} ' + ", ".join(
            clause_link(name, str(r.get("clause")), several) for r in not_applicable) + "</p>")
    passed = [r for r in rows if r.get("verdict") == "PASS"]
    if not problems and verdict == "PASS":
        statement = (_("Certification-grade: every applicable clause passed.") if cert.get("certification_grade")
                     else _("Every clause judged passed, but the run is not certification-grade."))
        out.append(f'<p class="statement">{statement}</p>')
    if not problems and not passed and not not_applicable:
        out.append(f'<p class="note">{_("No clause was judged.")}</p>')
    if passed:
        out.append('<p class="note">' + ngettext("{n} clause passed:", "{n} clauses passed:", len(passed)).format(
            n=len(passed)) + " " + ", ".join(clause_link(name, str(r.get("clause")), several) for r in passed)
            + "</p>")
    return "".join(out) + "</section>"


def _time(stamp: Any) -> str:
    """An ISO-8601 UTC time, as the run wrote it (a format, not words)."""
    return f'<time datetime="{esc(stamp)}">{esc(stamp)}</time>' if stamp else ""


def run_facts(cert: dict[str, Any], records: list[CheckRecord]) -> str:
    """Who tested with what, when — below the verdicts."""
    lab = cert.get("lab") or {}
    lab_html = ("<br>".join(esc(lab.get(k)) for k in ("name", "address") if lab.get(k))
                + ("<br>" + _("Accreditation: {number}").format(number=esc(lab["accreditation"]))
                   if lab.get("accreditation") else "")
                ) if lab else f'<span class="muted">{_("no lab declared in the rig")}</span>'
    rig = cert.get("rig") or {}
    rig_html = esc(rig.get("name", ""))
    if rig.get("file"):
        rig_html += f' <code class="muted">({esc(rig["file"])})</code>'
    if rig.get("sha256"):
        rig_html += f'<br><code class="hash">SHA-256 {esc(rig["sha256"])}</code>'
    by_verdict: dict[str, int] = defaultdict(int)
    for r in records:
        by_verdict[r.verdict.value] += 1
    checks = ", ".join(f"{verdict_text(v)} {n}" for v, n in sorted(by_verdict.items(), key=lambda kv: order(kv[0])))
    interrupted = f' <span class="badge v-inc">{_("interrupted")}</span>' if cert.get("interrupted") else ""
    return (f'<section class="run"><h2>{_("The run")}</h2>'
            f'<h3>{_("Clause verdicts, all DUTs")}</h3>' + counts_html(cert.get("counts") or {})
            + facts([
                (_("Laboratory"), lab_html),
                (_("Rig"), rig_html),
                (_("Harness version"), esc(cert.get("harness_version", ""))),
                (_("Started"), _time(cert.get("started"))),
                (_("Finished"), _time(cert.get("finished")) + esc(run_duration(cert.get("started"),
                                                                              cert.get("finished"))) + interrupted),
                (_("Checks run"), f"{len(records)}" + (f" ({checks})" if checks else "")),
                (_("Certificate format"), f'<code>{esc(cert.get("format", ""))}</code>'),
            ])
            + '<p class="muted small">' + _("The overall verdict is taken over the clauses that have checks. "
                                            "Clauses that cannot apply to a device of this kind are listed, by "
                                            "reason, at the end.") + "</p></section>")


def dut_identity(name: str, dut: dict[str, Any]) -> str:
    defects = dut.get("defects") or []
    profile = f'<code>{esc(dut.get("profile", ""))}</code>' + (
        f'<br><code class="hash">SHA-256 {esc(dut["profile_sha256"])}</code>' if dut.get("profile_sha256") else "")
    counts: dict[str, int] = defaultdict(int)
    for r in clauses_of(dut):
        counts[str(r.get("verdict", "NOT TESTED"))] += 1
    rows = [(_("Vendor"), esc(dut.get("vendor", ""))), (_("Model"), esc(dut.get("model", ""))),
            (_("Kind"), f'<code>{esc(dut.get("kind", ""))}</code>'),
            (_("Serial number"), esc(dut.get("serial_number", ""))),
            (_("Firmware"), esc(dut.get("firmware_version", ""))), (_("Profile"), profile),
            (_("Seeded defects"), ('<b class="fail-text"><code>' + esc(", ".join(map(str, defects))) + "</code> — "
                                   + _("harness self-test, not a certification") + "</b>") if defects
             else _("none"))]
    return (f'<section class="dut" id="{slug("dut", name)}"><div class="dut-head"><h3>{_("DUT")} '
            f"<code>{esc(name)}</code></h3>{badge(str(dut.get('verdict') or 'NOT TESTED'))}</div>"
            + facts(rows) + counts_html(dict(counts)) + "</section>")
