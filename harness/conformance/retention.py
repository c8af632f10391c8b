"""Retention across power loss, shared by the nvm checks of every metering clause (95, 96, …).

What a meter must keep through a power cut does not depend on what it meters: each counter equals
its last value before the cut plus at most what it could have counted while powered, and identity
and settings read back unchanged. The clause-specific part is only which counters there are and
how fast each may advance — the caller's ``Counter`` list.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any

from harness.conformance.cleanup import restoring
from harness.conformance.energy import elapse_device_time, snapshot
from harness.conformance.power import power_switch


@dataclass(frozen=True)
class Counter:
    """A register that accumulates and must survive a cut."""

    name: str  # canonical quantity
    label: str  # for the evidence
    unit: str  # canonical unit
    max_rate: float | None  # most it may advance per powered second (with tolerance); None: unknown


def counters_survive_power_cuts(dut: Any, check: Any, counters: list[Counter]) -> None:
    """Repeated cuts at random moments: each counter's change across a cut is within [0, rate × powered]."""
    power = power_switch(dut)
    names = [c.name for c in counters]
    rng = random.Random(f"{dut.name}-{dut.spec.unit_id}-nvm-{dut.seed}")
    timing = dut.timing
    # The picture: change since the first read (absolute values would hide a cut's step), totals only
    # when the device has per-tariff registers too, so the legend stays readable.
    charted = [c for c in counters if c.name.endswith("_total")] or counters
    series: dict[str, list[tuple[float, float]]] = {c.label: [] for c in charted}
    base: dict[str, float] = {}
    events: list[tuple[float, str]] = []
    t0 = time.time()
    for cut in range(1, timing.power_cuts + 1):
        elapse_device_time(dut, rng.uniform(0.05, 0.25) * timing.energy_window_s)
        before = snapshot(dut, names)
        pause = rng.uniform(0.0, 0.3)  # the cut lands at a random moment after the last read
        time.sleep(pause)
        t_off, t_on, ready = power.cut(dut.spec.power.off_time_s)
        after = snapshot(dut, names)
        powered = max(0.0, t_off - before.t_first_sent) + max(0.0, after.t_last_received - t_on)
        events.append((t_off - t0, f"cut {cut}"))
        for c in charted:
            first = base.setdefault(c.label, before.value(c.name))
            series[c.label] += [(before.t_first_sent - t0, before.value(c.name) - first),
                                (after.t_last_received - t0, after.value(c.name) - first)]
            res = max(before.resolution(c.name), after.resolution(c.name))
            delta = after.value(c.name) - before.value(c.name)
            if c.max_rate is None:
                check.at_least(f"cut {cut}: {c.label} change", delta, 0.0, unit=c.unit,
                               note="no reference rate: only 'no decrease' is checked")
                continue
            check.within(f"cut {cut}: {c.label} change", delta, 0.0, c.max_rate * powered + res, unit=c.unit,
                         note=f"powered {powered:.2f} s around the cut, ready after {ready:.2f} s")
    check.chart("Registers across each power cut", series, x_label="wall time since the first cut, s",
                y_label="change since the first read", events=events)
    check.require()


def identity_and_settings_survive(dut: Any, check: Any) -> None:
    """Write each setting's declared test value, cut the power, read identity and settings back."""
    power = power_switch(dut)
    device = dut.device
    settings = device.settings()
    identity_before = device.identity()
    original = {s: device.read(s).value for s in settings} if settings else {}
    written = {}
    section = dut.profile.modbus or dut.profile.dlms  # the protocol sections that declare settings
    points = section.settings if section else {}
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
