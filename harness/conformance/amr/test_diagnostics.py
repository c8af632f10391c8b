"""cl. 77 monitoring and automatic diagnostics: the server reports its own health, and each meter's communication —
a field meter whose link the harness cuts (its link-fault proxy, rig ``link: proxy``) shows a communication fault
within the declared time, the others stay ok, and the fault clears within it after the link returns."""

from __future__ import annotations

import pytest

from harness.conformance.amr.field_truth import (
    admin,
    amr_spec,
    bounded_wait,
    field_meters,
    observe_change,
    wait_for,
)
from harness.devices.amr.api import AmrSession, MeterStatus
from harness.reporting.texts import Msg
from harness.verdicts import Inconclusive

pytestmark = pytest.mark.dut_kind("amr_server")


def _diagnostics(session: AmrSession) -> dict[str, MeterStatus]:
    return {m.meter_id: m for m in session.meters()}


@pytest.mark.check("KZ-77-01", "diagnostics: the server reports its health; a field meter's cut link shows as a "
                   "communication fault within the declared time, the others stay ok, and it clears after the link "
                   "returns")
def test_communication_diagnostics(dut, check):
    spec, meters = amr_spec(dut), field_meters(dut)
    limit = spec.timings.fault_detection_s or spec.timings.inactive_detection_s
    victim_name = next((n for n, m in meters.items() if getattr(m.main_link, "fault", None) is not None), None)
    if victim_name is None:
        raise Inconclusive(Msg("no field meter's link can be cut: give one `link: proxy` in the rig's field"))
    bounded_wait(dut, 3 * limit, Msg("a link cut observed from the server"))
    health = dut.device.health()
    check.measure(Msg("server health"), health.get("status"), passed=health.get("status") == "ok", limit="ok",
                  note=", ".join(f"{k}: {v}" for k, v in health.items() if k != "status"))
    session = admin(dut)
    try:
        def all_ok() -> dict[str, MeterStatus] | None:
            shown = _diagnostics(session)
            return shown if all(m.communication_ok for m in shown.values()) else None

        before = wait_for(all_ok, limit, dut)[0] or _diagnostics(session)
        reported = all(m.communication_ok is not None for m in before.values())
        check.measure(Msg("communication diagnostics per meter"), Msg("reported") if reported else Msg("not reported"),
                      passed=reported, limit=Msg("each meter's link status (contract: meters[].communication)"))
        if not reported:
            check.require()
        for name in meters:
            ok = bool(before.get(name) and before[name].communication_ok)
            check.measure(Msg("{name}: link", name=name), Msg("ok") if ok else Msg("fault"), passed=ok,
                          limit=Msg("ok within {limit:g} s", limit=limit))
        with meters[victim_name].main_link.fault("cut"):
            observe_change(check, Msg("{name} link cut: communication fault shown", name=victim_name),
                           lambda: _diagnostics(session)[victim_name].communication_ok is False, limit,
                           Msg("still ok"),
                           "fault_detection_s", lambda: _diagnostics(session)[victim_name].communication_error or "",
                           dut=dut)
            during = _diagnostics(session)
            for name in meters:
                if name != victim_name:
                    ok = bool(during[name].communication_ok)
                    check.measure(Msg("{name} (link up) while {victim} is cut", name=name, victim=victim_name),
                                  Msg("ok") if ok else Msg("fault"),
                                  passed=ok, limit=Msg("ok"))
        observe_change(check, Msg("{name} link back: fault cleared", name=victim_name),
                       lambda: bool(_diagnostics(session)[victim_name].communication_ok), limit, Msg("still a fault"),
                       dut=dut)
    finally:
        session.close()
    check.require()
