"""cl. 62 meter status: every field meter shown active; a meter that loses power shown inactive within the
server's declared detection time, and active again within it after power returns."""

from __future__ import annotations

import time

import pytest

from harness.conformance.amr.field_truth import (
    admin,
    amr_spec,
    bounded_wait,
    field_meters,
    observe_change,
    wait_for,
)
from harness.devices.amr.api import AmrSession
from harness.reporting.texts import Msg
from harness.verdicts import Inconclusive

pytestmark = pytest.mark.dut_kind("amr_server")


def _statuses(session: AmrSession) -> dict[str, bool]:
    return {m.meter_id: m.active for m in session.meters()}


@pytest.mark.destructive
@pytest.mark.check("KZ-62-01", "meter status: every field meter shown active; one powered off shown inactive within "
                   "the declared detection time, and active again after power returns")
def test_meter_status(dut, check):
    spec, meters = amr_spec(dut), field_meters(dut)
    limit = spec.timings.inactive_detection_s
    victim_name = next((n for n, m in meters.items() if m.power is not None), None)
    if victim_name is None:
        raise Inconclusive(Msg("no field meter has a power switch (rig field.<meter>.power): a dead meter cannot be "
                                 "made"))
    victim = meters[victim_name]
    bounded_wait(dut, 3 * limit + victim.spec.power.off_time_s, Msg("a power cut observed from the server"))
    session = admin(dut)
    try:
        def all_active() -> dict[str, bool] | None:
            shown = _statuses(session)
            return shown if all(shown.get(n) for n in meters) else None

        final = wait_for(all_active, limit, dut)[0] or _statuses(session)
        for name in meters:
            check.measure(Msg("{name} shown active", name=name), Msg("active") if final.get(name) else
                          (Msg("not listed") if name not in final else Msg("inactive")), passed=bool(final.get(name)),
                          limit=Msg("active within {limit:g} s", limit=limit))
        victim.power.off()
        t_off = time.monotonic()
        try:
            observe_change(check, Msg("{name} powered off: shown inactive", name=victim_name),
                                      lambda: _statuses(session).get(victim_name) is False, limit,
                                      Msg("still active"),
                                      "inactive_detection_s", dut=dut)
            others = _statuses(session)
            for name in meters:
                if name != victim_name:
                    check.measure(Msg("{name} (powered) stays active while {victim} is off", name=name,
                                      victim=victim_name),
                                  Msg("active") if others.get(name) else Msg("inactive"),
                                  passed=bool(others.get(name)), limit=Msg("active"))
            # the cut lasts at least the rig's off time, in real time (the meter is a process, killed)
            time.sleep(max(0.0, victim.spec.power.off_time_s - (time.monotonic() - t_off)))
        finally:
            victim.power.on()
        observe_change(check, Msg("{name} powered on: shown active again", name=victim_name),
                       lambda: bool(_statuses(session).get(victim_name)), limit, Msg("still inactive"),
                       dut=dut)
    finally:
        session.close()
    check.require()
