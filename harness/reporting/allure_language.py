"""The Allure report in the run's language: its tree's chapter and clause labels and the verdict messages.

allure-results stay as the run wrote them (English; they are evidence under the seal). The report is
built from a translated copy in the builder's scratch directory: labels are recomputed from the clause
each result names (its ``feature`` label, ``cl. N``); a result whose check record is at hand (checks.jsonl
beside allure-results) gets its title — check id and title, as allure_labels.title writes it — and its
status message (verdict, then reason: allure_verdicts.message) rendered from the templates the check wrote,
so a number moves but is never re-worded; without a record only the verdict prefix is translated. Allure's
own interface follows ``reportLanguage`` (allure_html.py).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from harness.reporting.allure_verdicts import PREFIX, message, record_of
from harness.reporting.clauses import CHAPTER_TITLES, CLAUSES, chapter_of
from harness.reporting.i18n import _, language
from harness.reporting.records import CheckRecord, read_records
from harness.reporting.texts import localized


def _clause(result: dict[str, Any]) -> str | None:
    feature = next((str(lb.get("value")) for lb in result.get("labels") or [] if lb.get("name") == "feature"), "")
    return feature[len("cl. "):] if feature.startswith("cl. ") else None


def translated(result: dict[str, Any], record: CheckRecord | None = None) -> dict[str, Any]:
    """``result`` with its chapter/clause labels and verdict message (with ``record``: also its title and reason)
    in the current language."""
    out = dict(result)
    clause = _clause(result)
    if clause is not None:
        chapter = chapter_of(clause)
        title = CHAPTER_TITLES.get(chapter or 0)
        chapter_label = _("Chapter {n}. {title}").format(n=chapter, title=_(title)) if title else None
        known = CLAUSES.get(clause)
        clause_label = f"{_('cl.')} {clause}" + (f" — {known.gist}" if known and known.gist else "")
        new = {"parentSuite": chapter_label, "epic": chapter_label, "suite": clause_label,
               "feature": f"{_('cl.')} {clause}"}
        out["labels"] = [{**lb, "value": new[lb.get("name")]} if new.get(lb.get("name")) else lb
                         for lb in result.get("labels") or []]
    details = result.get("statusDetails") or {}
    if record is not None:
        out["name"] = f"{record.id} {localized(record.title, record.texts.get('title'))} [{record.dut}]"
        if details.get("message"):
            out["statusDetails"] = {**details, "message": message(record).localized()}
        return out
    text = str(details.get("message") or "")
    prefix = next((p for p in PREFIX.values() if text.startswith(p)), None)
    if prefix:
        out["statusDetails"] = {**details, "message": _(prefix) + text[len(prefix):]}
    return out


def localized_results(results_dir: Path, dest: Path, lang: str, records: list[CheckRecord] | None = None) -> Path:
    """A copy of ``results_dir`` at ``dest`` with every result translated into ``lang``; ``dest``. ``records``: the
    run's check records (default: the checks.jsonl beside ``results_dir``, when there is one)."""
    if records is None:
        records = read_records(results_dir.parent / "checks.jsonl")
    by_key = {(r.id, r.dut): r for r in records}
    dest.mkdir(parents=True)
    with language(lang):
        for src in sorted(results_dir.iterdir()):
            if not src.is_file():
                continue
            target = dest / src.name
            if src.name.endswith("-result.json"):
                try:
                    result = json.loads(src.read_text(encoding="utf-8"))
                except (OSError, ValueError):
                    result = None
                if isinstance(result, dict):
                    target.write_text(json.dumps(translated(result, record_of(result, by_key)), ensure_ascii=False),
                                      encoding="utf-8")
                    continue
            try:  # attachments and containers unchanged: a link where the file system allows
                os.link(src, target)
            except OSError:
                shutil.copy2(src, target)
    return dest
