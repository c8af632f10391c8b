"""Which control method a check may call on a controller, and how it is put back.

A control action on a real plant (start a pump, open a valve) is only taken where the profile names the method
that undoes it (``methods.X.undo``); of a pair that ``sets`` a point, the one that changes the point's present
value is chosen, so that the call really acts. The audit-log trigger matrix (KZ-69-01) and the role matrix
(KZ-78-01) both act through here.
"""

from __future__ import annotations

from typing import Any

from harness.config.opcua_map import Operation
from harness.reporting.texts import Msg

NO_UNDO = Msg("no control method declares its `undo` (the harness acts on a plant only where it can put it back)")


def control_methods(profile: Any) -> dict[str, Any]:
    """The declared methods of kind control, by name."""
    return {n: m for n, m in profile.opcua.methods.items() if m.kind == Operation.CONTROL}


def undoable_control(profile: Any, device: Any) -> tuple[str, Any] | None:
    """(name, method) of a control method with a declared undo — one that changes the present state if any
    does — or None."""
    undoable = [(n, m) for n, m in control_methods(profile).items() if m.undo is not None]
    if not undoable:
        return None
    return next(((n, m) for n, m in undoable if changes_state(device, m)), undoable[0])


def changes_state(device: Any, method: Any) -> bool:
    """Whether calling ``method`` would change a point it declares it sets (False when it sets none)."""
    return any(device.read(point).value != value for point, value in method.sets.items())
