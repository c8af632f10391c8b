"""Power cuts for the suites that need them (nvm, clock)."""

from __future__ import annotations

from typing import Any

from harness.reporting.texts import Msg
from harness.verdicts import Inconclusive


def power_switch(dut: Any) -> Any:
    if dut.power is None:
        raise Inconclusive(Msg("the rig wires no power switch to this DUT, so retention across power loss cannot "
                               "be tested"))
    return dut.power
