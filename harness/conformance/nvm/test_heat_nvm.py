"""cl. 96 non-volatile memory of a heat meter: repeated power cuts at random moments lose none of
the energy, volume or mass counted, and identity and settings survive (shared bodies with cl. 95
in ``conformance/retention.py``)."""

from __future__ import annotations

import pytest

from harness.conformance.heat import declared, water_density
from harness.conformance.power import power_switch
from harness.conformance.retention import Counter, counters_survive_power_cuts, identity_and_settings_survive
from harness.quantities import HEAT_COUNTERS, HEAT_ENERGY, HEAT_POWER, HEAT_QUANTITIES, MASS, VOLUME
from harness.reporting.texts import Msg
from harness.verdicts import Inconclusive

pytestmark = [pytest.mark.dut_kind("heat_meter"), pytest.mark.destructive]

LABELS = {HEAT_ENERGY: "thermal energy", VOLUME: "volume", MASS: "mass"}


@pytest.mark.check("KZ-96-05", "after each of repeated power cuts at random moments the energy, volume and mass "
                   "counters equal their last values before the cut (plus at most what the flow could add)")
def test_heat_counters_survive_power_cuts(dut, check):
    power_switch(dut)
    names = declared(dut, HEAT_COUNTERS)
    if not names:
        raise Inconclusive(Msg("the profile declares no heat meter counters"))
    ref = dut.spec.reference_flow
    margin = 1 + (ref.tolerance_pct / 100.0 if ref else 0.0)
    rates: dict[str, float | None] = {q: None for q in names}  # per second
    if ref is not None:
        rates[VOLUME] = ref.volume_flow_m3_h / 3600.0 * margin
        rates[MASS] = ref.volume_flow_m3_h / 3600.0 * water_density(ref.flow_temperature_c) / 1000.0 * margin
    if dut.profile.declares(HEAT_POWER):  # the meter's own power bounds what its energy may add
        rates[HEAT_ENERGY] = float(dut.device.read(HEAT_POWER).value) / 3600.0 * margin
    counters = [Counter(q, LABELS[q], HEAT_QUANTITIES[q], rates[q]) for q in names]
    counters_survive_power_cuts(dut, check, counters)


@pytest.mark.check("KZ-96-06", "identity and settings are retained across a power cut")
def test_heat_identity_and_settings_survive(dut, check):
    identity_and_settings_survive(dut, check)
