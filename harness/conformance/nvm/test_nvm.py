"""cl. 95 non-volatile memory: repeated power cuts at random moments lose no energy, and identity
and settings survive."""

from __future__ import annotations

import pytest

from harness.conformance.energy import declared_registers
from harness.conformance.power import power_switch
from harness.conformance.retention import Counter, counters_survive_power_cuts, identity_and_settings_survive
from harness.reporting.texts import Msg
from harness.verdicts import Inconclusive

pytestmark = [pytest.mark.dut_kind("electricity_meter"), pytest.mark.destructive]


@pytest.mark.check("KZ-95-07", "after each of repeated power cuts at random moments every energy register "
                   "equals its last value before the cut (plus at most what the load could add)")
def test_energy_survives_power_cuts(dut, check):
    power_switch(dut)
    regs = declared_registers(dut)
    if not regs:
        raise Inconclusive(Msg("the profile declares no energy registers"))
    load = dut.spec.reference_load
    tol = load.tolerance_pct / 100.0 if load else 0.0
    counters = [Counter(r.name, r.label, r.unit,
                        load.power_of(r.channel.value) / 3600.0 * (1 + tol) if load else None) for r in regs]
    counters_survive_power_cuts(dut, check, counters)


@pytest.mark.check("KZ-95-08", "identity and settings are retained across a power cut")
def test_identity_and_settings_survive(dut, check):
    identity_and_settings_survive(dut, check)
