"""Helpers the cl. 96 (heat meter) checks share: the bench's reference flow, the heat it implies, water
density and enthalpy, and the EN 1434 error limits a meter of the declared class is judged by.

The harness's density of water is its own reading of the physics, independent of any simulator's
(as the register codec is independent of the simulators' encoder): IAPWS-95 values as tabulated
for liquid water (e.g. NIST Chemistry WebBook) at 101.325 kPa up to 100 °C and at saturation
pressure above, every 10 °C, interpolated linearly. Interpolation adds under 0.01 %, far inside any
heat meter class (EN 1434 class 2 flow sensors are ±2 % and more).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Any

from harness.reporting.texts import Msg
from harness.verdicts import Inconclusive

# °C -> kg/m³ (IAPWS-95; 0-100 °C at 0.101325 MPa, 110-150 °C saturated liquid)
_DENSITY = {0: 999.84, 10: 999.70, 20: 998.21, 30: 995.65, 40: 992.22, 50: 988.03, 60: 983.20,
            70: 977.76, 80: 971.79, 90: 965.31, 100: 958.35, 110: 950.95, 120: 943.11, 130: 934.83,
            140: 926.13, 150: 917.01}
_T = sorted(_DENSITY)
# °C -> specific enthalpy of liquid water, kJ/kg (IAPWS-95 as tabulated by the NIST Chemistry WebBook; 0-100 °C
# at 0.101325 MPa, 110-150 °C saturated liquid). A calculator's heat coefficient (EN 1434-1) is the enthalpy
# difference per volume; interpolating every 10 °C adds under 0.05 % to a difference of 10 K or more.
_ENTHALPY = {0: 0.06, 10: 42.12, 20: 84.01, 30: 125.82, 40: 167.62, 50: 209.42, 60: 251.25, 70: 293.12,
             80: 335.05, 90: 377.04, 100: 419.17, 110: 461.42, 120: 503.81, 130: 546.38, 140: 589.16,
             150: 632.18}


def _interpolate(table: dict[int, float], what: str, t_c: float) -> float:
    if not _T[0] <= t_c <= _T[-1]:
        raise ValueError(f"water {what} is tabulated for {_T[0]}-{_T[-1]} °C, not {t_c:g} °C")
    i = min(bisect.bisect_right(_T, t_c), len(_T) - 1)
    t0, t1 = _T[i - 1], _T[i]
    return table[t0] + (table[t1] - table[t0]) * (t_c - t0) / (t1 - t0)


def water_density(t_c: float) -> float:
    """Density of liquid water in kg/m³ at ``t_c`` °C (0-150 °C)."""
    return _interpolate(_DENSITY, "density", t_c)


def water_enthalpy(t_c: float) -> float:
    """Specific enthalpy of liquid water in kJ/kg at ``t_c`` °C (0-150 °C)."""
    return _interpolate(_ENTHALPY, "enthalpy", t_c)


def reference_power_kw(ref: Any) -> float:
    """The thermal power the bench's heat carrier delivers: P = q_m · (h(θf) − h(θr)), q_m = q_v · ρ(θf).

    The volume is taken where the reference flow is given (``volume_flow_m3_h`` through the flow sensor, in the
    flow pipe as the mass check assumes); h(θf) − h(θr) is c_p · ΔΘ with c_p the mean over the pair.
    """
    mass_rate = ref.volume_flow_m3_h / 3600.0 * water_density(ref.flow_temperature_c)  # kg/s
    return mass_rate * (water_enthalpy(ref.flow_temperature_c) - water_enthalpy(ref.return_temperature_c))


# EN 1434-1 maximum permissible errors, in % of the true value, of the sub-assemblies of a heat meter:
# flow sensor Ef = ±(a + b · qp/q), at most ±5 %, per class; temperature sensor pair Et = ±(0.5 + 3 ΔΘmin/ΔΘ);
# calculator Ec = ±(0.5 + ΔΘmin/ΔΘ); a complete meter E = Ef + Et + Ec (arithmetic sum).
_FLOW_CLASS = {1: (1.0, 0.01), 2: (2.0, 0.02), 3: (3.0, 0.05)}
FLOW_ERROR_CAP_PCT = 5.0


@dataclass(frozen=True)
class HeatMpe:
    """EN 1434-1 maximum permissible errors at the bench's conditions, in %."""

    flow_pct: float
    sensors_pct: float
    calculator_pct: float
    bench_pct: float  # the bench's own uncertainty (reference_flow.tolerance_pct)
    basis: str

    @property
    def heat_pct(self) -> float:
        """The complete meter's error, plus the bench's."""
        return self.flow_pct + self.sensors_pct + self.calculator_pct + self.bench_pct

    @property
    def volume_pct(self) -> float:
        return self.flow_pct + self.bench_pct


def heat_mpe(dut: Any, ref: Any) -> HeatMpe:
    """The EN 1434-1 error limits of the DUT's declared class at the bench's flow and temperatures;
    INCONCLUSIVE when the bench runs the meter outside its rated ΔΘ (the formulas do not hold there)."""
    spec = dut.profile.heat
    delta = ref.flow_temperature_c - ref.return_temperature_c
    if delta < spec.delta_theta_min_k:
        raise Inconclusive(Msg("the bench's ΔΘ {delta:g} K is below the meter's ΔΘmin {delta_theta_min_k:g} K: "
                               "raise reference_flow.flow_temperature_c or lower return_temperature_c", delta=delta,
                               delta_theta_min_k=spec.delta_theta_min_k))
    a, b = _FLOW_CLASS[spec.accuracy_class]
    if spec.permanent_flow_m3_h is None:
        flow, qp = FLOW_ERROR_CAP_PCT, "qp undeclared: the 5 % cap"
    else:
        flow = min(FLOW_ERROR_CAP_PCT, a + b * spec.permanent_flow_m3_h / ref.volume_flow_m3_h)
        qp = f"qp {spec.permanent_flow_m3_h:g} m3/h"
    ratio = spec.delta_theta_min_k / delta
    return HeatMpe(flow, 0.5 + 3 * ratio, 0.5 + ratio, ref.tolerance_pct,
                   f"EN 1434-1 class {spec.accuracy_class} ({qp}, ΔΘmin {spec.delta_theta_min_k:g} K, ΔΘ {delta:g} K)"
                   f" + bench {ref.tolerance_pct:g} %")


def sensor_tolerance_k(t_c: float, ref: Any) -> float:
    """How far one temperature sensor may read from the bench's reference: IEC 60751 class B, ±(0.3 + 0.005·|t|)
    °C — the widest tolerance class of the platinum sensors EN 1434-2 admits — plus the bench's uncertainty."""
    return 0.3 + 0.005 * abs(t_c) + ref.temperature_tolerance_k


def reference_flow(dut: Any) -> Any:
    """The heat carrier the bench runs through the meter; INCONCLUSIVE when the rig declares none."""
    flow = dut.spec.reference_flow
    if flow is None:
        raise Inconclusive(Msg("the rig declares no reference_flow for this DUT, so the expected flow, "
                               "temperatures and accuracy are unknown"))
    return flow


def declared(dut: Any, quantities: tuple[str, ...]) -> list[str]:
    """The quantities of ``quantities`` this DUT's profile declares (missing ones are KZ-96-01's business)."""
    return [q for q in quantities if dut.profile.declares(q)]
