"""cl. 18-21 restricted access on an AMR server: a subscriber sees only its own meters, is refused the others'
readings, and nothing of theirs reaches it through the export."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from harness.config.amr import AmrOperation
from harness.conformance.amr.export_rows import exported_meters
from harness.conformance.amr.field_truth import admin, amr_spec, field_meters, temporary_user
from harness.devices.amr.api import AmrAccessDenied, AmrNotFound
from harness.verdicts import Inconclusive

pytestmark = pytest.mark.dut_kind("amr_server")


@pytest.mark.check("KZ-18-01", "subscriber isolation: a subscriber lists only its own meters, is refused every other "
                   "meter's readings, and its export holds only its own", also=("19", "21"))
def test_subscriber_isolation(dut, check):
    spec, meters = amr_spec(dut), field_meters(dut)
    if spec.subscriber_role is None:
        check.measure("subscriber role declared", "none", passed=False,
                      limit="a subscriber workstation (cl. 62) whose users read only their own data (cl. 18-21)")
        check.require()
    if len(meters) < 2:
        raise Inconclusive("the field has one meter: a subscriber's own meter needs another to be isolated from")
    own, others = next(iter(meters)), list(meters)[1:]
    session = admin(dut)
    try:
        with temporary_user(dut, session, spec.subscriber_role, [own]) as (user, password):
            sub = dut.device.login(user.name, password)
            try:
                listed = sorted(m.meter_id for m in sub.meters())
                check.measure("meters listed to the subscriber", ", ".join(listed) or "none", passed=listed == [own],
                              limit=f"only its own: {own}")
                check.measure(f"own meter {own} readable", len(sub.readings(own)), unit="readings", passed=True,
                              limit="allowed")
                for other in others:
                    try:
                        leaked = len(sub.readings(other))
                    except (AmrAccessDenied, AmrNotFound) as exc:
                        check.measure(f"readings of {other} (not its own)", f"refused ({exc})", passed=True,
                                      limit="refused")
                    else:
                        check.measure(f"readings of {other} (not its own)", f"{leaked} readings returned",
                                      passed=False, limit="refused")
                if spec.may(spec.subscriber_role, AmrOperation.EXPORT) and spec.export_formats:
                    end = datetime.now(UTC)
                    data = sub.export(spec.export_formats[0].value, end - timedelta(hours=1), end)
                    seen = exported_meters(data)
                    check.measure("meters in the subscriber's export", ", ".join(sorted(seen)) or "none",
                                  passed=seen <= {own}, limit=f"only its own: {own}")
            finally:
                sub.close()
    finally:
        session.close()
    check.require()
