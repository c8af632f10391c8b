"""cl. 96 date and time of a heat meter: the same clock checks as cl. 95's (one body in
``conformance/clock_checks.py``), with the heat meter clause's own ids."""

from __future__ import annotations

import pytest

from harness.conformance.clock_checks import (
    clock_continues_after_power_cut,
    clock_drift_within_declared,
    clock_readable_and_settable,
)

pytestmark = pytest.mark.dut_kind("heat_meter")
CLAUSE = "96"


@pytest.mark.check("KZ-96-07", "the date and time are readable, and a time set over the interface reads back")
def test_heat_clock_readable_and_settable(dut, check):
    clock_readable_and_settable(dut, check, CLAUSE)


@pytest.mark.destructive
@pytest.mark.check("KZ-96-08", "after a power cut the clock continues from where it was (not reset, not stopped)")
def test_heat_clock_continues_after_power_cut(dut, check):
    clock_continues_after_power_cut(dut, check, CLAUSE)


# Two time fixes with the device left alone between them; on a DUT with time control the check
# fast-forwards a day of device time instead of waiting, and that changes what others observe.
@pytest.mark.passive(unless="time_control")
@pytest.mark.check("KZ-96-09", "clock drift against the harness's clock is within the declared accuracy")
def test_heat_clock_drift(dut, check):
    clock_drift_within_declared(dut, check, CLAUSE)
