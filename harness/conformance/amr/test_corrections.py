"""cl. 48 manual correction only with confirmation: a proposed correction changes nothing; a confirmed one changes
the value, keeps the original, and the audit trail says who proposed, who confirmed, when, the old and new value
and the reason. The corrected reading is corrected back afterwards (both corrections stay in the audit trail)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

import pytest

from harness.config.amr import AmrOperation
from harness.conformance.amr.field_truth import (
    admin,
    amr_spec,
    bounded_wait,
    correction_roles,
    field_meters,
    role_session,
    wait_for,
)
from harness.devices.amr.api import AuditEntry, Correction
from harness.reporting.texts import Msg
from harness.verdicts import Inconclusive

pytestmark = pytest.mark.dut_kind("amr_server")


def _mentions(entry: AuditEntry, correction: Correction) -> bool:
    return any(str(v) == correction.correction_id for k, v in entry.details.items() if "correction" in k)


def _judge_audit(check, entries: list[AuditEntry], correction: Correction, since: datetime) -> None:
    """Who proposed, who confirmed, when, old and new value, reason: each must be in the trail."""
    about = [e for e in entries if _mentions(e, correction) and e.time >= since]
    proposed = [e for e in about if e.user == correction.proposed_by]
    confirmed = [e for e in about if e.user == correction.confirmed_by]
    check.measure(Msg("audit: the proposal, by its proposer"), Msg("{n} entries", n=len(proposed)),
                  passed=bool(proposed), limit=Msg("an entry by {user} naming correction {id}",
                                                   user=correction.proposed_by, id=correction.correction_id))
    check.measure(Msg("audit: the confirmation, by its confirmer"), Msg("{n} entries", n=len(confirmed)),
                  passed=bool(confirmed), limit=Msg("an entry by {user} naming correction {id}",
                                                    user=correction.confirmed_by, id=correction.correction_id))
    values = {str(v) for e in about for v in e.details.values()}
    for label, wanted in ((Msg("old value"), correction.old_value), (Msg("new value"), correction.new_value),
                          (Msg("reason"), correction.reason)):
        shown = str(wanted) in values or repr(wanted) in values or any(
            isinstance(v, int | float) and not isinstance(v, bool) and v == wanted
            for e in about for v in e.details.values())
        check.measure(Msg("audit: {label}", label=label), Msg("recorded") if shown else Msg("missing"), passed=shown,
                      limit=f"{wanted}")


@pytest.mark.destructive
@pytest.mark.check("KZ-48-01", "correction with confirmation: an unconfirmed correction changes nothing; a confirmed "
                   "one changes the value, keeps the original and is in the audit trail (who, when, old, new, why)")
def test_correction_needs_confirmation(dut, check):
    spec, meters = amr_spec(dut), field_meters(dut)
    roles = correction_roles(spec)
    proposers = [r for r, ops in spec.roles.items() if AmrOperation.PROPOSE_CORRECTION in ops]
    proposer = roles[0] if roles else (proposers[0] if proposers else None)
    if roles is None:
        check.measure(Msg("correction roles declared"), Msg("proposer {proposer}, confirmer {confirmer}",
                                                             proposer=proposer, confirmer=spec.confirmer_role),
                      passed=False, limit=Msg("a role that proposes corrections and a confirmer_role (cl. 48)"))
        check.require()
    meter = next(iter(meters))
    since = datetime.fromtimestamp(dut.time.device_now() - dut.timing.clock_tolerance_s, UTC)  # the server's time
    session = admin(dut)
    try:
        wait_s = bounded_wait(dut, 2 * spec.timings.poll_interval_s, Msg("waiting for a reading to correct"))
        readings, _ = wait_for(lambda: session.readings(meter) or None, wait_s, dut)
        if not readings:
            raise Inconclusive(Msg("the server holds no reading of {meter} to correct after {wait:g} s", meter=meter,
                                      wait=wait_s))
        target = readings[-1]
        new_value = target.value + 1.0
        reason = f"tek-harness KZ-48-01 {secrets.token_hex(3)}"  # an identifier: the same in every language
        with role_session(dut, session, proposer) as p, role_session(dut, session, spec.confirmer_role) as c:
            proposal = p.propose_correction(target.reading_id, new_value, reason)
            unconfirmed = session.reading(target.reading_id).value
            check.measure(Msg("value after an unconfirmed proposal"), unconfirmed, unit=target.unit,
                          passed=unconfirmed == target.value, limit=Msg("unchanged: {value}", value=target.value))
            confirmed = c.confirm_correction(proposal.correction_id)
            after = session.reading(target.reading_id)
            check.measure(Msg("value after confirmation"), after.value, unit=target.unit,
                          passed=after.value == new_value, limit=Msg("the corrected value {value}", value=new_value))
            check.measure(Msg("original value kept"), after.original_value, unit=target.unit,
                          passed=after.original_value == target.value, limit=f"{target.value}")
            _judge_audit(check, session.audit(), confirmed, since)
            # Put the reading back: a correction of the correction, proposed and confirmed the same way.
            back = p.propose_correction(target.reading_id, target.value, f"{reason}: undo")
            c.confirm_correction(back.correction_id)
    finally:
        session.close()
    check.require()
