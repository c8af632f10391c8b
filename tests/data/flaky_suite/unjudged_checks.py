"""A suite for the harness's own tests of checks that judge nothing: one records no measurement and never
calls ``require()``, one FAILs its first attempt and ends N/A (or INCONCLUSIVE) on its re-run. Attempts are
counted in files named by $TEK_FLAKY_DIR."""

from __future__ import annotations

import pytest
from attempts import attempt  # beside this file (pytest puts its folder on sys.path)

from harness.verdicts import Inconclusive, NotApplicable

pytestmark = pytest.mark.dut_kind("electricity_meter")


@pytest.mark.check("KZ-95-92", "measures nothing and never concludes")
def test_measures_nothing(dut, check):
    dut.device.identity()  # talks to the device, but records no evidence of anything


@pytest.mark.check("KZ-95-93", "fails, then says N/A on its re-run")
def test_fails_then_not_applicable(dut, check):
    if attempt("then_na") == 1:
        check.equal("first attempt passes", False, True)
        check.require()
    raise NotApplicable("the re-run found nothing to judge")


@pytest.mark.check("KZ-95-94", "fails, then says INCONCLUSIVE on its re-run")
def test_fails_then_inconclusive(dut, check):
    if attempt("then_inconclusive") == 1:
        check.equal("first attempt passes", False, True)
        check.require()
    raise Inconclusive("the re-run could not judge")
