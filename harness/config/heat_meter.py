"""A heat meter's declared metrology (profile section ``heat:``): its EN 1434 accuracy class and the
figures the class's error formulas need.

The class decides how far the meter may be from the heat the bench's reference flow implies
(``conformance/heat.py``). A declared class can only choose among EN 1434's classes; a profile that
declares none is held to class 3, the loosest class EN 1434-1 defines, never to anything looser.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from harness.config.modbus_map import Strict


class HeatMeterSpec(Strict):
    """EN 1434-1 accuracy of a complete heat meter (flow sensor, temperature sensor pair, calculator)."""

    accuracy_class: Literal[1, 2, 3] = Field(3, description="EN 1434-1 class of the flow sensor (and the meter)")
    delta_theta_min_k: float = Field(
        3.0, ge=1.0, le=10.0,
        description="lower limit of the temperature difference ΔΘmin, K (EN 1434-1: 1 … 10 K)")
    permanent_flow_m3_h: float | None = Field(
        None, gt=0, description="permanent flow rate qp; without it the flow sensor's error takes its 5 % cap")
