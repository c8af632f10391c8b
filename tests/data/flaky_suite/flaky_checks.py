"""A suite for the harness's own tests of flake detection: one check fails on its first attempt only,
one always fails. Each attempt is counted in a file named by $TEK_FLAKY_DIR."""

from __future__ import annotations

import pytest
from attempts import attempt  # beside this file (pytest puts its folder on sys.path)

pytestmark = pytest.mark.dut_kind("electricity_meter")


@pytest.mark.check("KZ-95-90", "passes from its second attempt on (a flaky check)")
def test_flaky(dut, check):
    n = attempt("flaky")
    check.at_least("attempt", n, 2, note="fails on the first attempt only")
    check.measure("serial number read", dut.device.identity().serial_number, passed=True)
    check.require()


@pytest.mark.check("KZ-95-91", "never passes (a deterministic failure)")
def test_always_fails(dut, check):
    n = attempt("always")
    check.equal("attempt passes", False, True, note=f"attempt {n}")
    check.require()
