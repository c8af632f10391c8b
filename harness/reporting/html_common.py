"""Small pieces every part of certificate.html uses: escaping, anchors, verdict badges, durations.

Kept apart from the page builders (html.py, html_first.py) so each stays one readable module. Every
visible word goes through the catalogs (i18n.py); a text that comes from the run (a reason, a title, a
device's answer) is escaped and, where it was left in English on a page in another language, marked
``lang="en"`` so that a reader (or screen reader) knows.
"""

from __future__ import annotations

import re
from datetime import datetime
from html import escape
from typing import Any

from harness.reporting.i18n import _, current, pgettext, verdict_name

VERDICT_ORDER = ("PASS", "FAIL", "INCONCLUSIVE", "FLAKY", "N/A", "NOT TESTED")
PROBLEMS = ("FAIL", "INCONCLUSIVE", "FLAKY")  # what the first screen explains, worst first
CLASS = {"PASS": "v-pass", "FAIL": "v-fail", "INCONCLUSIVE": "v-inc", "FLAKY": "v-inc", "N/A": "v-grey",
         "NOT TESTED": "v-grey"}


def esc(value: Any) -> str:
    return escape("" if value is None else str(value), quote=True)


def english_mark(text: Any) -> str:
    """`` lang="en"`` for a text the run left in English on a page that is not (a reason no catalog translates
    yet, a device's own words), so a reader and a screen reader know; nothing otherwise."""
    if current() == "en":
        return ""
    words = str(text)
    return ' lang="en"' if re.search(r"[A-Za-z]{3,}", words) and not re.search(r"[А-Яа-яЁё]", words) else ""


def data(value: Any, tag: str = "span", cls: str = "") -> str:
    """Text the run produced (reasons, titles, gists): escaped; marked English where it was left in English
    (the checks' texts are translated from their templates before a page is built: localize.py)."""
    attrs = (f' class="{cls}"' if cls else "") + english_mark(value)
    return f"<{tag}{attrs}>{esc(value)}</{tag}>" if attrs else esc(value)


def slug(*parts: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", "-".join(parts)).strip("-")


def clause_row_id(dut: str, clause: str, *, several_duts: bool) -> str:
    """``clause-95`` — or ``clause-<dut>-95`` when the certificate has several DUTs (ids must be unique)."""
    return slug("clause", dut, clause) if several_duts else slug("clause", clause)


def check_anchor(dut: str, check_id: str) -> str:
    """The id of a check's details; the same check id runs once per DUT, so the DUT is part of it."""
    return slug("check", dut, check_id)


def clause_link(name: str, clause: str, several: bool) -> str:
    return f'<a href="#{clause_row_id(name, clause, several_duts=several)}">{_("cl.")}&nbsp;{esc(clause)}</a>'


def kind_note(kind: str) -> str | None:
    return {"documentary": pgettext("verdict kind", "documentary"),
            "mixed": pgettext("verdict kind", "measured + documentary")}.get(kind)


def badge(verdict: str, kind: str = "measured", *, big: bool = False) -> str:
    """A verdict badge; documentary verdicts read e.g. "PASS (documentary)" and are drawn dashed."""
    note = kind_note(kind) if verdict != "NOT TESTED" else None
    cls = ["badge", CLASS.get(verdict, "v-grey")] + (["doc"] if note else []) + (["big"] if big else [])
    name = verdict_name(verdict)
    text = f"{name} ({note})" if note else name
    if big and len(text) > 10:  # "НЕ СООТВЕТСТВУЕТ" must fit the verdict box, in two lines if need be
        cls.append("long")
    return f'<span class="{" ".join(cls)}">{esc(text)}</span>'


def verdict_text(verdict: str) -> str:
    """A verdict as a coloured word (no box), for lists of checks."""
    return f'<span class="vt {CLASS.get(verdict, "v-grey")}">{esc(verdict_name(verdict))}</span>'


def clauses_of(dut: dict[str, Any]) -> list[dict[str, Any]]:
    rows = dut.get("clauses") or []
    if isinstance(rows, dict):  # verdicts.json style, keyed by clause
        return [{"clause": k, **v} for k, v in rows.items()]
    return list(rows)


def cannot_apply(row: dict[str, Any]) -> bool:
    """A clause no check of this run could judge for this DUT (out of scope, or no check for its kind).

    A NOT TESTED clause with deselected or unfinished checks could have been judged: it stays in the matrix.
    """
    return str(row.get("verdict") or "NOT TESTED") == "NOT TESTED" and not row.get("not_run")


def order(verdict: str) -> int:
    return VERDICT_ORDER.index(verdict) if verdict in VERDICT_ORDER else len(VERDICT_ORDER)


def duration(seconds: float) -> str:
    if seconds < 0.1:
        return _("{n} ms").format(n=f"{seconds * 1000:.0f}")
    if seconds < 60:
        return _("{n} s").format(n=f"{seconds:.1f}")
    m, s = divmod(round(seconds), 60)
    if m < 60:
        return _("{m} min {s} s").format(m=m, s=f"{s:02d}")
    return _("{h} h {m} min").format(h=m // 60, m=f"{m % 60:02d}")


def run_duration(started: Any, finished: Any) -> str:
    try:
        a = datetime.fromisoformat(str(started).replace("Z", "+00:00"))
        b = datetime.fromisoformat(str(finished).replace("Z", "+00:00"))
    except ValueError:
        return ""
    return f" ({duration((b - a).total_seconds())})" if b >= a else ""


def facts(items: list[tuple[str, str]]) -> str:
    """A two-column fact list; values are already HTML."""
    return '<dl class="facts">' + "".join(f"<dt>{esc(k)}</dt><dd>{v}</dd>" for k, v in items) + "</dl>"


def counts_html(counts: dict[str, int]) -> str:
    """Clause counts, problems first (the reader's first question is what is wrong)."""
    first = ("FAIL", "INCONCLUSIVE", "FLAKY", "PASS", "N/A", "NOT TESTED")
    keys = sorted(counts, key=lambda k: (first.index(k) if k in first else len(first), k))
    return '<div class="counts">' + "".join(
        f'<span class="count">{badge(k)} <b>{int(counts[k])}</b></span>' for k in keys) + "</div>"
