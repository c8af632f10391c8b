"""cl. 96 registers of a heat meter: thermal energy, thermal power, volume and mass of the heat
carrier present in their units, and the temperatures and flow it measures those of the bench's reference;
the counters never decrease; energy and power are those the bench's reference flow implies within the EN 1434
error of the declared class (and energy is the integral of the meter's own power); mass is volume times the
density of water at the flow temperature."""

from __future__ import annotations

import pytest

from harness.conformance.energy import (
    device_seconds_between,
    elapse_device_time,
    largest_steps_back,
    snapshot,
)
from harness.conformance.heat import (
    declared,
    heat_mpe,
    reference_flow,
    reference_power_kw,
    sensor_tolerance_k,
    water_density,
)
from harness.devices.api import DeviceError
from harness.quantities import (
    FLOW_TEMPERATURE,
    HEAT_COUNTERS,
    HEAT_ENERGY,
    HEAT_POWER,
    HEAT_QUANTITIES,
    HEAT_RECORDED,
    MASS,
    RETURN_TEMPERATURE,
    VOLUME,
    VOLUME_FLOW,
)
from harness.reporting.outcome import exc_text
from harness.reporting.texts import Msg
from harness.verdicts import Inconclusive

pytestmark = pytest.mark.dut_kind("heat_meter")

SAMPLE_ROUNDS = 6  # KZ-96-02: rounds of back-to-back reads, with device time passing between rounds
READS_PER_ROUND = 5
POWER_SAMPLES = 4  # KZ-96-03: sub-windows over which the power register is sampled
MIN_STEPS = 10  # a window must move a counter this many register steps to judge a rate
LABELS = {HEAT_ENERGY: "thermal energy", HEAT_POWER: "thermal power", VOLUME: "volume", MASS: "mass"}


def _label(q: str) -> str:
    return LABELS.get(q, q.replace("_", " "))


@pytest.mark.check("KZ-96-01", "thermal energy, thermal power, volume and mass of the heat carrier are declared "
                   "and readable in their units (and the temperatures and flow they come from, where declared)")
def test_heat_quantities_present(dut, check):
    for q, unit in HEAT_QUANTITIES.items():
        required = q in HEAT_RECORDED
        if not dut.profile.declares(q):
            check.measure(_label(q), Msg("not declared in the profile"), passed=not required,
                          limit=Msg("declared") if required else "",
                          note=Msg("named by cl. 96") if required else Msg("not named by cl. 96; not exercised"))
            continue
        try:
            reading = dut.device.read(q)
        except DeviceError as exc:
            check.measure(_label(q), exc_text(exc), passed=False, limit=Msg("readable"))
            continue
        ok = reading.unit == unit and isinstance(reading.value, int | float)
        if q in HEAT_COUNTERS or q == HEAT_POWER:
            ok = ok and reading.value >= 0
        check.measure(_label(q), reading.value, unit=reading.unit, passed=ok,
                      limit=Msg("a number ≥ 0 in {unit}", unit=unit) if q in HEAT_RECORDED
                      else Msg("a number in {unit}", unit=unit))
    check.require()
    _measures_the_reference(dut, check)
    check.require()


def _measures_the_reference(dut, check) -> None:
    """The temperatures and flow the meter measures are those the bench runs through it: a sensor that reads
    the return 20 K low makes every kWh after it wrong, however consistent the registers are."""
    ref = reference_flow(dut)
    expected = {FLOW_TEMPERATURE: ref.flow_temperature_c, RETURN_TEMPERATURE: ref.return_temperature_c}
    compared = [q for q in (FLOW_TEMPERATURE, RETURN_TEMPERATURE, VOLUME_FLOW) if dut.profile.declares(q)]
    if not compared:
        raise Inconclusive(Msg("the profile declares neither temperature nor flow points, so what the meter "
                               "measures cannot be compared with the bench's reference_flow (KZ-96-03 still judges "
                               "its heat)"))
    readings = dut.device.read_many(compared)
    for q in compared:
        value = float(readings[q].value)
        if q == VOLUME_FLOW:
            allowed = heat_mpe(dut, ref).volume_pct / 100.0 * ref.volume_flow_m3_h
            check.within(Msg("{label} against the reference", label=_label(q)), value, ref.volume_flow_m3_h - allowed,
                         ref.volume_flow_m3_h + allowed, unit="m3/h",
                         note=Msg("EN 1434-1 flow sensor error + bench ({basis})", basis=heat_mpe(dut, ref).basis))
        else:
            tol = sensor_tolerance_k(expected[q], ref)
            check.within(Msg("{label} against the reference",
                             label=_label(q)), value, expected[q] - tol, expected[q] + tol,
                         unit="degC", note=Msg("IEC 60751 class B ±(0.3 + 0.005·|t|) °C + the bench's "
                                               "{temperature_tolerance_k:g} K "
                                               "(reference_flow.temperature_tolerance_k)",
                                               temperature_tolerance_k=ref.temperature_tolerance_k))


@pytest.mark.check("KZ-96-02", "the energy, volume and mass counters never decrease")
def test_heat_counters_monotonic(dut, check):
    counters = declared(dut, HEAT_COUNTERS)
    if not counters:
        raise Inconclusive(Msg("the profile declares no heat meter counters"))
    worst = largest_steps_back(dut, counters, SAMPLE_ROUNDS, READS_PER_ROUND)
    for q in counters:
        check.at_most(Msg("{label} largest step back", label=_label(q)), worst[q], 0.0, unit=HEAT_QUANTITIES[q],
                      note=Msg("{value} reads", value=SAMPLE_ROUNDS * READS_PER_ROUND))
    check.require()


@pytest.mark.check("KZ-96-03", "thermal energy and power are those the bench's reference flow and temperatures "
                   "imply, within the EN 1434 error of the declared class, and energy is the integral of power")
def test_heat_energy_is_integral_of_power(dut, check):
    if declared(dut, (HEAT_ENERGY, HEAT_POWER)) != [HEAT_ENERGY, HEAT_POWER]:
        raise Inconclusive(Msg("the profile does not declare both thermal energy and power (KZ-96-01 reports it)"))
    ref = reference_flow(dut)
    tol = ref.tolerance_pct / 100.0
    mpe = heat_mpe(dut, ref)
    p_ref = reference_power_kw(ref) * 1000.0  # W
    e = mpe.heat_pct / 100.0
    qs = [HEAT_ENERGY, HEAT_POWER]
    snaps, low, high, sub_windows = [snapshot(dut, qs)], 0.0, 0.0, []
    for _ in range(POWER_SAMPLES):
        forwarded, _ = elapse_device_time(dut, dut.timing.energy_window_s / POWER_SAMPLES)
        sub_windows.append(forwarded)
        snaps.append(snapshot(dut, qs))
        a, b = snaps[-2], snaps[-1]
        least, most = device_seconds_between(dut, a, b, forwarded)
        # Power is sampled at the ends of each sub-window; between them it is bounded by those samples.
        low += min(a.value(HEAT_POWER), b.value(HEAT_POWER)) * least / 3600.0
        high += max(a.value(HEAT_POWER), b.value(HEAT_POWER)) * most / 3600.0
    res = max(s.resolution(HEAT_ENERGY) for s in snaps)
    if low < MIN_STEPS * res:
        raise Inconclusive(Msg("the integral of power over {energy_window_s:g} s is {low:.1f} Wh, under "
                               "{min_steps} energy register steps of {res:g} Wh: is heat flowing? else lengthen "
                               "timing.energy_window_s", energy_window_s=dut.timing.energy_window_s, low=low,
                               min_steps=MIN_STEPS, res=res))
    delta = snaps[-1].value(HEAT_ENERGY) - snaps[0].value(HEAT_ENERGY)
    basis = f"{ref.volume_flow_m3_h:g} m3/h at {ref.flow_temperature_c:g}/{ref.return_temperature_c:g} °C " \
            f"→ {p_ref / 1000:.3f} kW; ± {mpe.heat_pct:.2f} %: {mpe.basis}"
    powers = [s.value(HEAT_POWER) for s in snaps]
    check.within(Msg("thermal power against the reference (lowest sample)"), min(powers), p_ref * (1 - e),
                 p_ref * (1 + e), unit="W", note=basis)
    check.within(Msg("thermal power against the reference (highest sample)"), max(powers), p_ref * (1 - e),
                 p_ref * (1 + e), unit="W", note=basis)
    least = device_seconds_between(dut, snaps[0], snaps[-1], 0.0)[0] + sum(sub_windows)
    most = device_seconds_between(dut, snaps[0], snaps[-1], 0.0)[1] + sum(sub_windows)
    check.within(Msg("thermal energy increase against the reference"), delta,
                 p_ref * least / 3600.0 * (1 - e) - 2 * res, p_ref * most / 3600.0 * (1 + e) + 2 * res, unit="Wh",
                 note=Msg("{least:.1f}…{most:.1f} device s; {basis}", least=least, most=most, basis=basis))
    check.within(Msg("thermal energy increase"), delta, low * (1 - tol) - 2 * res, high * (1 + tol) + 2 * res,
                 unit="Wh", note=Msg("∫ power = {low:.1f}…{high:.1f} Wh from {value} power samples, ± {value2:g} % "
                                     "± 2 steps", low=low, high=high, value=POWER_SAMPLES + 1, value2=tol * 100))
    check.require()


@pytest.mark.check("KZ-96-04", "volume advances at the reference flow and mass equals volume × water density at "
                   "the flow temperature, within the declared accuracy")
def test_heat_mass_is_volume_times_density(dut, check):
    if declared(dut, (VOLUME, MASS)) != [VOLUME, MASS]:
        raise Inconclusive(Msg("the profile does not declare both volume and mass (KZ-96-01 reports it)"))
    ref = reference_flow(dut)
    tol = ref.tolerance_pct / 100.0
    tol_v = heat_mpe(dut, ref).volume_pct / 100.0  # the flow sensor's EN 1434 error + the bench's
    before = snapshot(dut, [VOLUME, MASS])
    forwarded, _ = elapse_device_time(dut, dut.timing.energy_window_s)
    after = snapshot(dut, [VOLUME, MASS])
    least, most = device_seconds_between(dut, before, after, forwarded)
    res_v = max(before.resolution(VOLUME), after.resolution(VOLUME))
    res_m = max(before.resolution(MASS), after.resolution(MASS))
    expected_v = ref.volume_flow_m3_h * least / 3600.0
    if expected_v < MIN_STEPS * res_v:
        raise Inconclusive(Msg("{volume_flow_m3_h:g} m3/h over {least:.0f} s is under {min_steps} volume register "
                               "steps of {res_v:g} m3; lengthen timing.energy_window_s",
                               volume_flow_m3_h=ref.volume_flow_m3_h, least=least, min_steps=MIN_STEPS, res_v=res_v))
    d_volume = after.value(VOLUME) - before.value(VOLUME)
    check.within(Msg("volume increase"), d_volume, expected_v * (1 - tol_v) - 2 * res_v,
                 ref.volume_flow_m3_h * most / 3600.0 * (1 + tol_v) + 2 * res_v, unit="m3",
                 note=Msg("{volume_flow_m3_h:g} m3/h over {least:.1f}…{most:.1f} device s, ± {value:.2f} % "
                          "({basis})", volume_flow_m3_h=ref.volume_flow_m3_h, least=least, most=most, value=tol_v * 100,
                          basis=heat_mpe(dut, ref).basis))
    rho_t = water_density(ref.flow_temperature_c) / 1000.0  # t/m³
    d_mass = after.value(MASS) - before.value(MASS)
    apparent = d_mass / d_volume * 1000.0 if d_volume > 0 else float("nan")
    check.within(Msg("mass increase"), d_mass, (d_volume - 2 * res_v) * rho_t * (1 - tol) - 2 * res_m,
                 (d_volume + 2 * res_v) * rho_t * (1 + tol) + 2 * res_m, unit="t",
                 note=Msg("volume increase × {value:.2f} kg/m3 (water at {flow_temperature_c:g} °C); the meter's "
                          "mass/volume is {apparent:.2f} kg/m3", value=rho_t * 1000,
                          flow_temperature_c=ref.flow_temperature_c, apparent=apparent))
    check.require()
