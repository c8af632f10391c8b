"""cl. 18-21 restricted access on an AMR server: a subscriber sees only its own meters, is refused the others'
readings, and nothing of theirs reaches it through an export (each declared format), a report or analytics."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from harness.config.amr import AmrOperation, ReportKind
from harness.conformance.amr.export_rows import exported_meters
from harness.conformance.amr.field_truth import (
    admin,
    amr_spec,
    bounded_wait,
    field_meters,
    require_declared,
    temporary_user,
    wait_for,
)
from harness.devices.amr.api import AmrAccessDenied, AmrNotFound
from harness.reporting.texts import Msg
from harness.verdicts import Inconclusive

pytestmark = pytest.mark.dut_kind("amr_server")


@pytest.mark.check("KZ-18-01", "subscriber isolation: a subscriber lists only its own meters, is refused every other "
                   "meter's readings, and its exports, reports and analytics hold only its own", also=("19", "21"))
def test_subscriber_isolation(dut, check):
    spec, meters = amr_spec(dut), field_meters(dut)
    require_declared(check, spec.subscriber_role is not None, Msg("subscriber role declared"),
                     Msg("a subscriber workstation (cl. 62) whose users read only their own data (cl. 18-21)"))
    if len(meters) < 2:
        raise Inconclusive(Msg("the field has one meter: a subscriber's own meter needs another to be isolated from"))
    own, others = next(iter(meters)), list(meters)[1:]
    interval = spec.timings.poll_interval_s
    session = admin(dut)
    try:
        # every meter has readings a leak could show (the server's time passes until it has read each one)
        wait_for(lambda: True if all(session.readings(m) for m in meters) else None,
                 bounded_wait(dut, 2 * interval, Msg("waiting for a reading of every field meter")), dut)
        with temporary_user(dut, session, spec.subscriber_role, [own]) as (user, password):
            sub = dut.device.login(user.name, password)
            try:
                listed = sorted(m.meter_id for m in sub.meters())
                check.measure(Msg("meters listed to the subscriber"), ", ".join(listed) or Msg("none"),
                              passed=listed == [own], limit=Msg("only its own: {meter}", meter=own))
                check.measure(Msg("own meter {meter} readable", meter=own), len(sub.readings(own)), unit="readings",
                              passed=True, limit=Msg("allowed"))
                for other in others:
                    try:
                        leaked = len(sub.readings(other))
                    except (AmrAccessDenied, AmrNotFound) as exc:
                        check.measure(Msg("readings of {meter} (not its own)", meter=other),
                                      Msg("refused ({exc})", exc=exc), passed=True, limit=Msg("refused"))
                    else:
                        check.measure(Msg("readings of {meter} (not its own)", meter=other),
                                      Msg("{n} readings returned", n=leaked), passed=False, limit=Msg("refused"))
                end = datetime.fromtimestamp(dut.time.device_now() + dut.timing.clock_tolerance_s, UTC)  # its clock
                start = end - timedelta(seconds=2 * interval + 3600)
                if spec.may(spec.subscriber_role, AmrOperation.EXPORT):
                    for fmt in spec.export_formats:
                        seen = exported_meters(sub.export(fmt.value, start, end), fmt.value)
                        check.measure(Msg("meters in the subscriber's {fmt} export", fmt=fmt.value),
                                      ", ".join(sorted(seen)) or Msg("none"), passed=seen <= {own},
                                      limit=Msg("only its own: {meter}", meter=own))
                if spec.may(spec.subscriber_role, AmrOperation.REPORTS):
                    _judge_reports(check, dut, spec, sub, own, start, end)
            finally:
                sub.close()
    finally:
        session.close()
    check.require()


def _judge_reports(check, dut, spec, sub, own: str, start: datetime, end: datetime) -> None:
    """The subscriber's reports and analytics of every declared kind name no meter but its own."""
    kinds = spec.reports or (list(ReportKind) if spec.analytics else [])
    for kind in kinds:
        named = {m.meter_id for m in sub.report(kind.value, start, end).meters} if kind in spec.reports else set()
        if spec.analytics:
            got = sub.analytics(kind.value, start, end)
            named |= {extreme[0] for extreme in (got.maximum, got.minimum) if extreme is not None}
        check.measure(Msg("meters in the subscriber's {kind} reports and analytics", kind=kind.value),
                      ", ".join(sorted(named)) or Msg("none"), passed=named <= {own},
                      limit=Msg("only its own: {meter}", meter=own))
