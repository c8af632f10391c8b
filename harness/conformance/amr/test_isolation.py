"""cl. 18-21 restricted access on an AMR server: a subscriber sees only its own meters, is refused the others'
readings, and nothing of theirs reaches it through the export."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from harness.config.amr import AmrOperation
from harness.conformance.amr.export_rows import exported_meters
from harness.conformance.amr.field_truth import admin, amr_spec, bounded_wait, field_meters, temporary_user, wait_for
from harness.devices.amr.api import AmrAccessDenied, AmrNotFound
from harness.reporting.texts import Msg
from harness.verdicts import Inconclusive

pytestmark = pytest.mark.dut_kind("amr_server")


@pytest.mark.check("KZ-18-01", "subscriber isolation: a subscriber lists only its own meters, is refused every other "
                   "meter's readings, and its export holds only its own", also=("19", "21"))
def test_subscriber_isolation(dut, check):
    spec, meters = amr_spec(dut), field_meters(dut)
    if spec.subscriber_role is None:
        check.measure(Msg("subscriber role declared"), Msg("none"), passed=False,
                      limit=Msg("a subscriber workstation (cl. 62) whose users read only their own data (cl. 18-21)"))
        check.require()
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
                if spec.may(spec.subscriber_role, AmrOperation.EXPORT) and spec.export_formats:
                    end = datetime.fromtimestamp(dut.time.device_now() + dut.timing.clock_tolerance_s, UTC)
                    data = sub.export(spec.export_formats[0].value, end - timedelta(seconds=2 * interval + 3600), end)
                    seen = exported_meters(data)
                    check.measure(Msg("meters in the subscriber's export"), ", ".join(sorted(seen)) or Msg("none"),
                                  passed=seen <= {own}, limit=Msg("only its own: {meter}", meter=own))
            finally:
                sub.close()
    finally:
        session.close()
    check.require()
