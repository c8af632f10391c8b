"""Helpers the cl. 96 (heat meter) checks share: the bench's reference flow and water density.

The harness's density of water is its own reading of the physics, independent of any simulator's
(as the register codec is independent of the simulators' encoder): IAPWS-95 values as tabulated
for liquid water (e.g. NIST Chemistry WebBook) at 101.325 kPa up to 100 °C and at saturation
pressure above, every 10 °C, interpolated linearly. Interpolation adds under 0.01 %, far inside any
heat meter class (EN 1434 class 2 flow sensors are ±2 % and more).
"""

from __future__ import annotations

import bisect
from typing import Any

from harness.verdicts import Inconclusive

# °C -> kg/m³ (IAPWS-95; 0-100 °C at 0.101325 MPa, 110-150 °C saturated liquid)
_DENSITY = {0: 999.84, 10: 999.70, 20: 998.21, 30: 995.65, 40: 992.22, 50: 988.03, 60: 983.20,
            70: 977.76, 80: 971.79, 90: 965.31, 100: 958.35, 110: 950.95, 120: 943.11, 130: 934.83,
            140: 926.13, 150: 917.01}
_T = sorted(_DENSITY)


def water_density(t_c: float) -> float:
    """Density of liquid water in kg/m³ at ``t_c`` °C (0-150 °C)."""
    if not _T[0] <= t_c <= _T[-1]:
        raise ValueError(f"water density is tabulated for {_T[0]}-{_T[-1]} °C, not {t_c:g} °C")
    i = min(bisect.bisect_right(_T, t_c), len(_T) - 1)
    t0, t1 = _T[i - 1], _T[i]
    return _DENSITY[t0] + (_DENSITY[t1] - _DENSITY[t0]) * (t_c - t0) / (t1 - t0)


def reference_flow(dut: Any) -> Any:
    """The heat carrier the bench runs through the meter; INCONCLUSIVE when the rig declares none."""
    flow = dut.spec.reference_flow
    if flow is None:
        raise Inconclusive("the rig declares no reference_flow for this DUT, so the expected flow, "
                           "temperatures and accuracy are unknown")
    return flow


def declared(dut: Any, quantities: tuple[str, ...]) -> list[str]:
    """The quantities of ``quantities`` this DUT's profile declares (missing ones are KZ-96-01's business)."""
    return [q for q in quantities if dut.profile.declares(q)]
