"""Judging declared evidence against the day of the run: periods in force, verification intervals,
documents on disk.

The Rules ask that an instrument *is* registered, verified and certified — on the day it is
judged, not on the day its profile was written — so every date is compared with the UTC date at
the moment the check runs, and that date goes into the measurement's limit as evidence. A part the
Rules require and nobody declared is a FAIL that names the YAML field to add, never an N/A.
"""

from __future__ import annotations

import calendar
import hashlib
from datetime import UTC, date, datetime
from typing import Any

from harness.config.safe_files import MAX_DOCUMENT_BYTES
from harness.reporting.texts import Msg


def run_date() -> date:
    """'Today' for a documentary check: the UTC date at the moment the check runs."""
    return datetime.now(UTC).date()


def add_months(day: date, months: int) -> date:
    """``day`` plus whole calendar months, the day clamped to the month's end (31 Jan + 1 = 28/29 Feb).

    Verification intervals are set in months; a month is not a fixed number of days, so the
    date is counted on the calendar, as verification certificates are.
    """
    year, month = divmod(day.year * 12 + day.month - 1 + months, 12)
    month += 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def verification_due(last: date, interval_months: int) -> date:
    """The first day the last verification no longer covers: ``last`` + the interval."""
    return add_months(last, interval_months)


def verification_valid(last: date, interval_months: int, day: date) -> bool:
    """Verified on ``day``: last ≤ day < last + interval (on the due date a new verification is needed)."""
    return last <= day < verification_due(last, interval_months)


def in_force(start: date, end: date | None, day: date) -> bool:
    """A certificate or registry entry holds on ``day``: from ``start`` through ``end`` inclusive.

    ``end`` None means no end date (type approvals may be unlimited).
    """
    return start <= day and (end is None or day <= end)


# ---- what the DUT declares ----------------------------------------------------------------------
def declared(dut: Any) -> Any:
    """The DUT's documentation: the profile's (the model), each field the rig declares replacing it."""
    profile_doc, rig_doc = dut.profile.documentation, dut.spec.documentation
    if profile_doc is None:
        return rig_doc
    return profile_doc.overridden_by(rig_doc)


def declared_in(dut: Any, field: str) -> str:
    """Which file a documentation field comes from, for the measurement's note."""
    rig_doc = dut.spec.documentation
    if rig_doc is not None and field in rig_doc.model_fields_set:
        return Msg("declared in the rig")
    return Msg("declared in {name}", name=dut.profile_path.name)


def not_declared(check: Any, field: str, what: str) -> None:
    """A FAIL naming the YAML field to add (cl. 50–93 require the evidence; its absence is no N/A)."""
    check.measure(Msg("documentation.{field}", field=field), Msg("not declared"), passed=False, limit=Msg("declared"),
                  note=Msg("declare `documentation.{field}`: {what} — in the profile, or for this DUT in the rig; "
                           "the Rules require it", field=field, what=what))


# ---- periods ------------------------------------------------------------------------------------
def period_in_force(check: Any, name: str, start: date, end: date | None, day: date, note: str = "") -> bool:
    """Record a validity period against the run date; True when it holds on ``day``."""
    shown = f"{start.isoformat()} … {end.isoformat() if end else 'no end date'}"
    return check.measure(name, shown, passed=in_force(start, end, day),
                         limit=Msg("in force on {isoformat} (run date, UTC)",
                                   isoformat=day.isoformat()), note=note).passed


def certificate_in_force(check: Any, certificates: list[Any], subject: str, day: date, source: str) -> bool:
    """Record the conformity certificate for ``subject`` that holds on ``day``.

    One certificate in force is what the Rules ask for; when several are, the one that lasts
    longest is the evidence (an older, superseded one is beside the point). When none is, every
    declared one is recorded as failing, so the report shows what lapsed.
    """
    mine = [c for c in certificates if c.subject == subject]
    if not mine:
        not_declared(check, "conformity_certificates",
                     Msg("an entry with `subject: {subject}` (`number`, `issuer`, `issued`, `valid_until`)",
                         subject=str(subject)))  # the YAML value, never translated
        return False
    valid = [c for c in mine if in_force(c.issued, c.valid_until, day)]
    shown = [max(valid, key=lambda c: c.valid_until or date.max)] if valid else mine
    for c in shown:
        period_in_force(check, Msg("{subject} conformity certificate {number}", subject=subject, number=c.number),
                        c.issued, c.valid_until, day,
                        note=Msg("issued by {issuer}; {source}", issuer=c.issuer, source=source))
    return bool(valid)


# ---- documents ----------------------------------------------------------------------------------
def documents_of(documentation: Any, kind: str) -> list[Any]:
    """The declared documents of one kind (none when nothing is declared at all)."""
    return [d for d in (documentation.documents if documentation else []) if d.kind == kind]


def document_intact(check: Any, doc: Any) -> bool:
    """Record that a declared document is stored: a readable, non-empty file, the declared one if hashed.

    It is read through ``DocumentRef.read``: a regular file inside the declaring file's folder, at most
    ``MAX_DOCUMENT_BYTES`` — whatever it was swapped for since loading (a FIFO, a link out) is a FAIL
    with the reason, never a hang or a read of something else.

    The file's SHA-256 goes into the evidence either way, so a certificate names the exact
    version of each document it rests on.
    """
    name = Msg("{value} “{title}”", value=doc.kind.value, title=doc.title)
    limit = (Msg("a readable, non-empty regular file inside the declaring file's folder, at most "
                 "{max_document_bytes:,} bytes", max_document_bytes=MAX_DOCUMENT_BYTES))
    try:
        data = doc.read()
    except OSError as exc:
        return check.measure(name, Msg("{file}: {value}", file=doc.file, value=exc.strerror or exc), passed=False,
                             limit=limit, note=Msg("looked for {path}", path=doc.path)).passed
    digest = hashlib.sha256(data).hexdigest()
    ok = check.measure(name, Msg("{file} ({n} bytes)", file=doc.file, n=len(data)), passed=len(data) > 0,
                       limit=limit, note=Msg("sha256 {digest}", digest=digest)).passed
    if doc.sha256 is not None:
        ok = check.equal(Msg("{name} sha256", name=name), digest, doc.sha256.lower(),
                         note=Msg("declared sha256 of the document as issued")) and ok
    return ok
