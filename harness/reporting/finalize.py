"""After the checks: certificate.json, certificate.html, the Allure report, then the seal.

One sequence serves `harness certify` (at the end of a run, also an interrupted one) and
`harness report` (rebuilding the readable reports of a sealed run, e.g. once Allure is installed):
the seal always comes last, so it covers every file the run leaves.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.redaction import Redactor
from harness.reporting.seal import CERTIFICATE
from harness.reporting.texts import Msg

HTML, ALLURE_HTML = "certificate.html", "allure-report.html"


@dataclass
class Finalized:
    certificate: dict[str, Any]
    signer_subject: str = ""
    notes: list[str] = field(default_factory=list)  # what a person should know (no Allure, a new key …): Msg
    language: str = "en"  # the run's language: the notes are printed in it


def ensure_key(signer_name: str, key_dir: Path, lab_name: str | None) -> str | None:
    """Make a lab key on first use of the default location, so a first run ends signed; say so."""
    from harness import registry
    from harness.reporting.signing import KEY_FILE, default_key_dir

    spec = registry.signers().get(signer_name)
    if spec is None or spec.init is None or (key_dir / KEY_FILE).exists() or key_dir != default_key_dir():
        return None
    try:
        described = spec.init(key_dir, lab_name or "Unnamed lab (tek-harness self-signed key)")
    except FileExistsError:
        return None  # another first run made it a moment ago (init holds the key directory's lock)
    return Msg("made a new self-signed lab key in {key_dir} ({described}); `harness keys init --force --name …` "
               "replaces it with one that names your lab", key_dir=str(key_dir), described=described)


def allure_wanted() -> bool:
    """The Allure report is built unless HARNESS_NO_ALLURE_REPORT=1 (it costs ~1.5 s a run; the harness's
    own tests set it for the dozens of runs that are not about reports)."""
    return os.environ.get("HARNESS_NO_ALLURE_REPORT", "") not in ("1", "true", "yes")


def finalize(out: Path, *, signer: str, key_dir: Path, lab: dict[str, Any] | None = None,
             rebuild_certificate: bool = True, allure_report: bool = True,
             redactor: Redactor | None = None, lang: str | None = None) -> Finalized:
    """``lang``: the readable reports' language (certificate.json records it; its keys never change).
    None keeps the language the certificate already names (``harness report``), else English."""
    from harness.redaction import sweep
    from harness.reporting import custody, localize
    from harness.reporting.allure_html import AllureUnavailable, build_allure_html
    from harness.reporting.certificate import build_certificate
    from harness.reporting.html import render_certificate_html
    from harness.reporting.i18n import language, translations
    from harness.reporting.records import read_records
    from harness.reporting.seal import load_signer, seal

    notes: list[str] = []
    created = ensure_key(signer, key_dir, (lab or {}).get("name"))
    if created:
        notes.append(created)
    load_signer(signer, key_dir)  # no key, no certificate: a run left unsigned stays resumable
    if rebuild_certificate:
        certificate = build_certificate(out, lab)
    else:
        certificate = json.loads((out / CERTIFICATE).read_text(encoding="utf-8"))
    lang = lang or certificate.get("language") or "en"
    translations(lang)  # an unknown language is refused before any file changes (UnknownLanguage)
    if rebuild_certificate or certificate.get("language") != lang:
        certificate["language"] = lang
        with language(lang):  # the texts in the run's language beside the English (localize.translation)
            certificate = localize.translation(certificate)
        _write(out / CERTIFICATE, json.dumps(certificate, indent=2, ensure_ascii=False) + "\n")
    allure: str | None = None
    results = out / "allure-results"
    if not allure_report:
        notes.append(Msg("Allure report not built (asked not to); `harness report OUTDIR` builds it later"))
    elif results.is_dir() and any(results.iterdir()):
        try:
            build_allure_html(results, out / ALLURE_HTML, title=f"tek-harness — {certificate['rig']['name']}",
                              lang=lang)
            allure = ALLURE_HTML
        except AllureUnavailable as exc:
            notes.append(Msg("Allure report not built: {error}", error=str(exc)))
        except (RuntimeError, OSError, ValueError) as exc:
            notes.append(Msg("Allure report not built: {error}", error=str(exc)))
    records = read_records(out / "checks.jsonl")
    _write(out / HTML, render_certificate_html(certificate, records, allure_report=allure, lang=lang))
    swept = sweep(out, redactor or Redactor())  # the rule once more over everything, for what plugins wrote
    if swept:
        notes.append(Msg("secrets kept out of the evidence before the seal: {files}",
                         files=Msg.joined(", ", swept)))
    block = seal(out, signer, key_dir)
    run_id = custody.run_id_of(out)
    try:
        if run_id:
            custody.record(key_dir, run_id, "sealed")
    except OSError as exc:
        notes.append(Msg("the seal is not in the lab key directory's register ({error}): a resume of "
                         "this run would not know it was sealed", error=str(exc.strerror or exc)))
    return Finalized(certificate, str(block.get("subject", "")), notes, lang)


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def print_notes(result: Finalized) -> None:
    """The notes on stderr in the run's language (a note's values — files, errors — as they are)."""
    from harness.reporting.i18n import language

    with language(result.language):
        for note in result.notes:  # a plain-text note (a plugin's) shows as written after the translated "note:"
            print(Msg("note: {note}", note=note).localized(), file=sys.stderr)
