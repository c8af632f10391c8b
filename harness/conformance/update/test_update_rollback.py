"""cl. 70 rollback to the previous version: by the device itself when an activated image fails its
health check (within the declared ``health_check_s``, without any action of the harness), and on the
command of an account allowed to update, with the configuration made since kept."""

from __future__ import annotations

import time

import pytest

from harness.conformance.cleanup import restoring
from harness.conformance.update.steps import IN_PROGRESS, POLL_S, AuditMark, Updater, moved_to
from harness.devices.api import DeviceError
from harness.events import AuditKind
from harness.reporting.texts import Msg
from harness.verdicts import Inconclusive

# Installing firmware — forged images included, which a faulty device might accept — is destructive (DESIGN.md):
# these checks run only where the rig allows destructive tests.
pytestmark = [pytest.mark.dut_kind("controller"), pytest.mark.destructive]


@pytest.mark.check("KZ-70-04", "an activated image that fails its health check is rolled back automatically within "
                   "the declared health_check_s: the previous version runs again, and it is logged")
def test_unhealthy_image_rolled_back(dut, check):
    up = Updater(dut)
    bad = up.image("unhealthy")
    declared = up.spec.health_check_s
    margin = dut.timing.request_timeout_s  # one request's worth for the harness to see it
    limit = declared + margin
    with restoring(up.return_to):
        offer = up.offer(bad.data)
        if offer.refused:
            raise Inconclusive(Msg("the device refused the rig's unhealthy image {version} ({describe}), so no "
                                   "automatic rollback can be provoked (duts.{name}.firmware.unhealthy)",
                                   version=bad.version, describe=offer.describe(), name=dut.name))
        mark = AuditMark(dut.device)
        up.steps.activate()
        t0 = time.monotonic()
        trace: list[tuple[float, str | None, str | None]] = []  # (seconds after Activate, running, state)
        back = None
        on_trial = False  # the unhealthy version was seen running (else "back" may be "not yet switched")
        while back is None and (not trace or trace[-1][0] < limit):
            try:
                running, state = up.steps.running_version(), up.steps.state()
            except DeviceError:  # rebooting into the other slot
                running = state = None
            trace.append((time.monotonic() - t0, running, state))
            on_trial = on_trial or running == bad.version
            if running == up.original and (on_trial or state == "RolledBack") and state not in IN_PROGRESS:
                back = trace[-1][0]
            else:
                time.sleep(POLL_S)
        _, running, state = trace[-1]
        if back is None:
            check.measure(Msg("automatic rollback after Activate"), Msg("never"), passed=False,
                          limit=Msg("≤ {limit:g} s",
                                                                                                limit=limit),
                          note=Msg("{version} activated; {limit:g} s later the device runs {running} (state "
                                   "{state}) and the harness did nothing", version=bad.version, limit=limit,
                                   running=running, state=state))
        else:
            check.at_most(Msg("automatic rollback after Activate"), round(back, 3), limit, unit="s",
                          note=Msg("declared health_check_s {declared:g} s + one request timeout {margin:g} s to "
                                   "see it; {version} ran {how_long}", declared=declared, margin=margin,
                                   version=bad.version,
                                   how_long=Msg("until then") if on_trial else Msg("too briefly to be read")))
        check.equal(Msg("running version after the automatic rollback"), running, up.original)
        logged = [e for e in mark.entries(AuditKind.FIRMWARE_UPDATE) if moved_to(e, up.original)]
        check.at_least(Msg("firmware_update entries for the automatic rollback to {original}",
                           original=up.original), len(logged), 1,
                       note=Msg("users: {sorted}", sorted=sorted({str(e.user) for e in logged})))
    check.chart(Msg("Activation of the unhealthy image {version}", version=bad.version), {
        Msg("running {version}", version=bad.version): [(t, 1.0 if r == bad.version else 0.0) for t, r, _ in trace],
    }, kind="step", x_label=Msg("seconds after Activate"), y_label=Msg("on the unhealthy image"),
        events=[(0.0, "Activate"), (declared, Msg("declared health_check_s"))]
        + ([(back, Msg("back on {version}", version=up.original))] if back is not None else []))
    check.require()


def _setting(dut, role: str | None):
    """The first setpoint or parameter with a declared range that ``role`` may write, or None."""
    ops = dut.profile.opcua.roles.get(role or "", [])
    for name, point in dut.profile.opcua.points.items():
        if point.range is not None and point.kind.write_operation in ops:
            return name, point
    return None


def _inside(low: float, high: float, current: float) -> float:
    """A value well inside [low, high] and clearly different from ``current``."""
    span = high - low
    for fraction in (0.37, 0.63):
        value = round(low + span * fraction, 2)
        if abs(value - current) > span * 0.05:
            return value
    raise AssertionError(Msg("unreachable: two values 26 % of the range apart cannot both be within 5 % of one"))


@pytest.mark.check("KZ-70-05", "an operator-initiated rollback restores the previous version (N−1) and keeps the "
                   "configuration made since")
def test_operator_rollback_keeps_configuration(dut, check):
    up = Updater(dut)
    new = up.image("next")
    chosen = _setting(dut, up.role)
    if chosen is None:
        raise Inconclusive(Msg("the profile declares no setpoint or parameter with a range that the {value} role "
                               "may write, so no kept configuration can be shown", value=up.role or 'update'))
    name, point = chosen
    device = dut.device
    original_value = float(device.read(name).value)
    target = _inside(*point.range, original_value / point.factor) * point.factor
    with restoring(up.return_to):
        up.update_to(new)
        previous = up.steps.previous_version()
        with restoring(lambda: device.write(name, original_value, role=up.role)):
            device.write(name, target, role=up.role)
            kept = float(device.read(name).value)
            t0 = time.monotonic()
            up.steps.rollback(role=up.role)
            state = up.reach(("RolledBack", "Idle"), f"rollback from {new.version}")
            took = time.monotonic() - t0
            running = up.steps.running_version()
            after = float(device.read(name).value)
        check.equal(Msg("running version after the rollback"), running, up.original,
                    note=Msg("from {version} as {role} ({value}); the device showed N−1 = {previous}; state "
                             "{state} {took:.2f} s after Rollback", version=new.version, role=up.role,
                             value=up.account or 'certificate', previous=previous, state=state, took=took))
        span = (point.range[1] - point.range[0]) * point.factor
        # Judged against the value WRITTEN: a write the device acknowledged and dropped reads back the old value,
        # which a rollback would then "keep" perfectly.
        check.measure(Msg("{name} read back after the write on {version}", name=name, version=new.version), kept,
                      passed=abs(kept - target) <= span * 1e-6, limit=Msg("= {target:g}",
                                                                          target=target), unit=point.canonical_unit,
                      note=Msg("was {original_value:g}", original_value=original_value))
        check.measure(Msg("{name} after the rollback", name=name), after, passed=abs(after - target) <= span * 1e-6,
                      limit=Msg("= {target:g}", target=target), unit=point.canonical_unit,
                      note=Msg("written on {version} (was {original_value:g}); restored afterwards",
                               version=new.version, original_value=original_value))
    check.require()
