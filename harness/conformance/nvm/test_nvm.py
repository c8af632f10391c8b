"""cl. 95 non-volatile memory: repeated power cuts at random moments lose no energy, and identity
and settings survive."""

from __future__ import annotations

import random
import time

import pytest

from harness.conformance.cleanup import restoring
from harness.conformance.energy import declared_registers, elapse_device_time, snapshot
from harness.conformance.power import power_switch
from harness.verdicts import Inconclusive

pytestmark = [pytest.mark.dut_kind("electricity_meter"), pytest.mark.destructive]


@pytest.mark.check("KZ-95-07", "after each of repeated power cuts at random moments every energy register "
                   "equals its last value before the cut (plus at most what the load could add)")
def test_energy_survives_power_cuts(dut, check):
    power = power_switch(dut)
    regs = declared_registers(dut)
    if not regs:
        raise Inconclusive("the profile declares no energy registers")
    load = dut.spec.reference_load
    tol = load.tolerance_pct / 100.0 if load else 0.0
    rng = random.Random(f"{dut.name}-{dut.spec.unit_id}-nvm-{dut.seed}")
    timing = dut.timing
    for cut in range(1, timing.power_cuts + 1):
        elapse_device_time(dut, rng.uniform(0.05, 0.25) * timing.energy_window_s)
        before = snapshot(dut, regs)
        pause = rng.uniform(0.0, 0.3)  # the cut lands at a random moment after the last read
        time.sleep(pause)
        t_off, t_on, ready = power.cut(dut.spec.power.off_time_s)
        after = snapshot(dut, regs)
        powered = max(0.0, t_off - before.t_first_sent) + max(0.0, after.t_last_received - t_on)
        for r in regs:
            res = max(before.resolution(r), after.resolution(r))
            delta = after.value(r) - before.value(r)
            if load is None:
                check.at_least(f"cut {cut}: {r.label} change", delta, 0.0, unit=r.unit,
                               note="no reference load: only 'no decrease' is checked")
                continue
            high = load.power_of(r.channel.value) * powered / 3600.0 * (1 + tol) + res
            check.within(f"cut {cut}: {r.label} change", delta, 0.0, high, unit=r.unit,
                         note=f"powered {powered:.2f} s around the cut, ready after {ready:.2f} s")
    check.require()


@pytest.mark.check("KZ-95-08", "identity and settings are retained across a power cut")
def test_identity_and_settings_survive(dut, check):
    power = power_switch(dut)
    device = dut.device
    settings = device.settings()
    identity_before = device.identity()
    original = {s: device.read(s).value for s in settings} if settings else {}
    written = {}
    points = dut.profile.modbus.settings if dut.profile.modbus else {}
    for name in settings:
        p = points[name]
        if p.writable and p.test_value is not None and p.test_value != original[name]:
            device.write(name, p.test_value)
            written[name] = p.test_value
    expected = {**original, **written}

    def put_back() -> None:
        for name in written:
            device.write(name, original[name])

    with restoring(put_back):
        power.cut(dut.spec.power.off_time_s)
        identity_after = device.identity()
        check.equal("serial number", identity_after.serial_number, identity_before.serial_number)
        check.equal("firmware version", identity_after.firmware_version, identity_before.firmware_version)
        for name, value in expected.items():
            check.equal(f"setting {name}", device.read(name).value, value,
                        note="written before the cut" if name in written else "as found")
        if not written:
            check.measure("settings written", 0, passed=True,
                          note="no writable setting declares a test_value: retention of found values only")
    check.require()
