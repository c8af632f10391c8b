"""A suite for the harness's own tests of overlapped passive checks (harness/overlap.py): three passive checks —
one flaky, one always failing, one passing — and one that is not passive, with an id between theirs. Each
passive check waits a second per attempt, so that overlap shows in the records' times. Attempts are counted in
files named by $TEK_FLAKY_DIR."""

from __future__ import annotations

import time

import pytest
from attempts import attempt  # beside this file (pytest puts its folder on sys.path)

pytestmark = pytest.mark.dut_kind("electricity_meter")
WINDOW_S = 1.0


@pytest.mark.passive
@pytest.mark.check("KZ-95-95", "passes from its second attempt on (a flaky passive check)")
def test_passive_flaky(dut, check):
    n = attempt("passive_flaky")
    time.sleep(WINDOW_S)
    check.at_least("attempt", n, 2, note="fails on the first attempt only")
    check.measure("serial number read", dut.device.identity().serial_number, passed=True)
    check.require()


@pytest.mark.passive
@pytest.mark.check("KZ-95-96", "never passes (a deterministic failure, passive)")
def test_passive_always_fails(dut, check):
    n = attempt("passive_always")
    time.sleep(WINDOW_S)
    check.equal("attempt passes", False, True, note=f"attempt {n}")
    check.require()


@pytest.mark.check("KZ-95-97", "not passive: runs alone, never while the passive ones do")
def test_not_passive(dut, check):
    check.measure("serial number read", dut.device.identity().serial_number, passed=True)
    check.require()


@pytest.mark.passive
@pytest.mark.check("KZ-95-98", "passes (passive)")
def test_passive_passes(dut, check, harness_run):
    time.sleep(WINDOW_S)
    check.measure("serial number read", dut.device.identity().serial_number, passed=True,
                  note=f"rig {harness_run.loaded.rig.name}")
    check.require()
