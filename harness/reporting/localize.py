"""The run's own texts (check titles, reasons, measurements, charts) in a report's language.

Records and certificate.json keep English plus the templates the checks wrote (texts.py); a report
renders them in its language here, once, before any page or summary is built, so the page builders
stay language-blind. Chapter titles in Russian are the Rules' own (rules.yaml, from the official text),
and the clause's Russian wording stands in for the English gist: the certificate quotes, it does not
paraphrase.
"""

from __future__ import annotations

import copy
from typing import Any

from harness.reporting.clauses import CHAPTER_TITLES, CHAPTER_TITLES_RU
from harness.reporting.i18n import SOURCE_LANGUAGE, _, current, pgettext
from harness.reporting.records import Attempt, Chart, CheckRecord, Measurement
from harness.reporting.texts import localized


def chapter_title(chapter: int, english: str = "") -> str:
    """A chapter's title in the current language: in Russian the Rules' own words, quoted."""
    english = english or CHAPTER_TITLES.get(chapter, "")
    if current() == "ru" and chapter in CHAPTER_TITLES_RU:
        return CHAPTER_TITLES_RU[chapter]
    return _(english) if english else english


# Units the checks write as words (a symbol such as Wh or kWh stays as it is: no entry). Marked here so that
# extraction finds them; in the "unit" context, so that "s" the unit stands apart from any other "s".
_UNIT_WORDS = (pgettext("unit", "s"), pgettext("unit", "ms"), pgettext("unit", "d"), pgettext("unit", "records"),
               pgettext("unit", "intervals"), pgettext("unit", "t"),
               pgettext("unit", "bytes"), pgettext("unit", "readings"), pgettext("unit", "meters"))


def unit(text: str | None) -> str | None:
    """A measurement's unit in the current language."""
    return pgettext("unit", text) if text else text


def _measurement(m: Measurement) -> Measurement:
    update: dict[str, Any] = {f: localized(str(getattr(m, f)), m.texts.get(f))
                              for f in ("name", "limit", "note") if getattr(m, f)}
    update["unit"] = unit(m.unit)
    if isinstance(m.measured, str):
        update["measured"] = localized(m.measured, m.texts.get("measured"))
    return m.model_copy(update=update)


def _chart(c: Chart) -> Chart:
    labels = c.texts.get("labels") or {}

    def label(text: str) -> str:
        return localized(text, labels.get(text))

    return c.model_copy(update={
        "title": localized(c.title, c.texts.get("title")), "x_label": localized(c.x_label, c.texts.get("x_label")),
        "y_label": localized(c.y_label, c.texts.get("y_label")),
        "series": {label(k): v for k, v in c.series.items()}, "events": [(x, label(e)) for x, e in c.events]})


def _attempt(a: Attempt) -> Attempt:
    return a.model_copy(update={"reason": localized(a.reason, a.texts.get("reason"))})


def record(rec: CheckRecord) -> CheckRecord:
    """A check record with its texts in the current language (English: as recorded)."""
    if current() == SOURCE_LANGUAGE:
        return rec
    return rec.model_copy(update={
        "title": localized(rec.title, rec.texts.get("title")), "reason": localized(rec.reason, rec.texts.get("reason")),
        "measurements": [_measurement(m) for m in rec.measurements], "charts": [_chart(c) for c in rec.charts],
        "attempts": [_attempt(a) for a in rec.attempts]})


def _check(c: dict[str, Any]) -> dict[str, str]:
    texts = c.get("texts") or {}
    out = {"title": localized(str(c.get("title") or ""), texts.get("title")),
           "reason": localized(str(c.get("reason") or ""), texts.get("reason"))}
    out["attempts"] = [localized(str(a.get("reason") or ""), (a.get("texts") or {}).get("reason"))
                       for a in c.get("attempts") or []]
    return out


def _row(row: dict[str, Any]) -> dict[str, str]:
    gist = str(row.get("gist") or "")
    translated = _(gist) if gist else ""
    if translated == gist:  # no translation of the English gist: the Rules' own wording stands for it
        translated = str(row.get("text_ru") or "").split("\n")[0] if current() == "ru" else ""
    return {"reason": localized(str(row.get("reason") or ""), (row.get("texts") or {}).get("reason")),
            "gist": translated}


def translation(cert: dict[str, Any]) -> dict[str, Any]:
    """certificate.json's texts in the current language: ``translation`` beside each English text, and the
    chapters; nothing for English (the English is the certificate's own fields)."""
    cert = copy.deepcopy(cert)
    for obj in _objects(cert):
        obj.pop("translation", None)
    cert.pop("chapters_translated", None)
    if current() == SOURCE_LANGUAGE:
        return cert
    for dut in (cert.get("duts") or {}).values():
        for row in dut.get("clauses") or []:
            row["translation"] = _row(row)
            for c in row.get("checks") or []:
                c["translation"] = _check(c)
    cert["chapters_translated"] = {str(n): chapter_title(int(n), t) for n, t in (cert.get("chapters") or {}).items()}
    return cert


def _objects(cert: dict[str, Any]) -> list[dict[str, Any]]:
    rows = [row for dut in (cert.get("duts") or {}).values() for row in dut.get("clauses") or []]
    return rows + [c for row in rows for c in row.get("checks") or []]


def view(cert: dict[str, Any]) -> dict[str, Any]:
    """The certificate as a page in the current language reads it: each text replaced by its translation."""
    cert = translation(cert)
    if current() == SOURCE_LANGUAGE:
        return cert
    for dut in (cert.get("duts") or {}).values():
        for row in dut.get("clauses") or []:
            row.update(row.pop("translation"))
            for c in row.get("checks") or []:
                t = c.pop("translation")
                c["title"], c["reason"] = t["title"], t["reason"]
                for a, reason in zip(c.get("attempts") or [], t["attempts"], strict=False):
                    a["reason"] = reason
    cert["chapters"] = cert.pop("chapters_translated")
    return cert
