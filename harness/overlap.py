"""Overlapping passive windows: checks that only observe an undisturbed DUT run at the same time.

Why: a certification spends most of its wall time waiting — a soak polling for hours, a clock-drift
window on a device whose time the harness cannot fast-forward. Two such observations of one DUT need
not wait one after the other, as long as nothing that changes the device (a clock set, a power cut, a
write, an attack, a link fault, fast-forwarded device time) runs while they do.

What a check does to the device is declared on the check, never inferred from its id:
``@pytest.mark.passive`` says "this check only reads the DUT and changes nothing on it", and
``unless=`` names the rig conditions under which that is not true (see ``CONDITIONS``): the drift
check fast-forwards device time on a DUT with time control, the soak cuts the main link when the rig
schedules link faults. The scheduler puts a DUT's passive checks next to each other in the run order
(at the place of the first of them) and runs them as one group, each in a thread of its own with a
Device (connection) of its own; every other check runs alone, before or after the group. A check is
kept out of a group (and runs alone, as before) when its DUT is on a serial line (one master: there is
no second connection to give it) or when it needs a fixture other than the ones the scheduler can give
it (``dut``, ``check``, ``harness_run``).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

MARKER = "passive"
GROUP_FIXTURES = frozenset({"dut", "check", "harness_run"})  # what the scheduler can hand an overlapped check
JOIN_POLL_S = 0.5  # the main thread waits in steps, so Ctrl-C still reaches it


def _time_control(rig: Any, dut: str) -> str | None:
    spec = rig.duts[dut]
    return "the DUT has time control, so the check fast-forwards its device time" if spec.control else None


def _link_faults(rig: Any, dut: str) -> str | None:
    return "the rig's soak faults a link (availability.link_faults)" if rig.availability.link_faults else None


# Rig conditions under which a check declared passive changes what others observe; each says why, or None.
CONDITIONS: dict[str, Callable[[Any, str], str | None]] = {
    "time_control": _time_control,
    "link_faults": _link_faults,
}


def unless_of(mark: Any) -> tuple[str, ...]:
    """The condition names of a ``passive`` marker (``unless="x"`` or ``unless=("x", "y")``)."""
    unless = mark.kwargs.get("unless", ())
    return (unless,) if isinstance(unless, str) else tuple(unless)


def unknown_conditions(mark: Any) -> list[str]:
    return [name for name in unless_of(mark) if name not in CONDITIONS]


def why_not_overlapped(item: Any, rig: Any, dut: str) -> str | None:
    """None when ``item`` may run in its DUT's passive group; else why it runs alone."""
    mark = item.get_closest_marker(MARKER)
    if mark is None:
        return "not declared passive"
    if item.get_closest_marker("documentary"):
        return "documentary: it reads no device"
    if dut not in rig.duts:
        return "no DUT"
    if rig.duts[dut].transport.serial is not None:
        return "a serial line has one master: no second connection to give it"
    extra = set(getattr(item, "fixturenames", ())) - GROUP_FIXTURES - {"request"}
    if extra:
        return f"needs fixtures the scheduler cannot give it ({', '.join(sorted(extra))})"
    for name in unless_of(mark):
        reason = CONDITIONS[name](rig, dut)
        if reason:
            return reason
    return None


def arrange(items: list[Any], rig: Any, dut_of: Callable[[Any], str]) -> list[list[Any]]:
    """Reorder ``items`` in place so that each DUT's overlappable checks stand together at the place of
    the first of them; returns those groups (two checks or more; a lone passive check runs as before)."""
    members: dict[str, list[Any]] = {}
    for item in items:
        dut = dut_of(item)
        if why_not_overlapped(item, rig, dut) is None:
            members.setdefault(dut, []).append(item)
    groups = [group for group in members.values() if len(group) > 1]
    if not groups:
        return []
    grouped = {id(it): group for group in groups for it in group}
    arranged: list[Any] = []
    for item in items:
        group = grouped.get(id(item))
        if group is None:
            arranged.append(item)
        elif item is group[0]:
            arranged.extend(group)
    items[:] = arranged
    return groups


class OwnConnection:
    """The DUT runtime as one overlapped check sees it: all of it shared, except a Device of its own.

    The drivers are not made for two threads on one connection, and one check's exchanges must not sit
    in the middle of another's timing (the drift check's clock reads): each overlapped check gets its own
    connection on the main transport — same driver, timing and transcript as ``dut.device``."""

    def __init__(self, runtime: Any, label: str) -> None:
        object.__setattr__(self, "_runtime", runtime)
        object.__setattr__(self, "_label", label)
        object.__setattr__(self, "_device", None)

    @property
    def device(self) -> Any:
        if self._device is None:
            rt = self._runtime
            object.__setattr__(self, "_device", rt.extra_device(self._label, rt.timing, rt.transcript))
        return self._device

    def __getattr__(self, name: str) -> Any:
        return getattr(self._runtime, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._runtime, name, value)

    def close(self) -> None:
        if self._device is not None:
            self._device.close()


@dataclass
class Running:
    """One overlapped check in its thread: when it ran, and how it ended."""

    thread: threading.Thread | None = None
    started: float = 0.0
    finished: float = 0.0
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)

    def wait(self) -> None:
        """Until the check's thread ends (in steps: the main thread stays interruptible); re-raise its error."""
        while not self.done.wait(JOIN_POLL_S):
            pass
        if self.error is not None:
            raise self.error


def start(body: Callable[[], Any], name: str, cleanup: Sequence[Callable[[], None]] = ()) -> Running:
    """Run ``body`` in a thread of its own now; ``cleanup`` runs after it, whatever happened."""
    running = Running()

    def target() -> None:
        running.started = time.time()
        try:
            body()
        except BaseException as exc:  # handed to the check's own call phase, which reports it
            running.error = exc
        finally:
            for step in cleanup:
                with contextlib.suppress(Exception):  # a connection that will not close changes no verdict
                    step()
            running.finished = time.time()
            running.done.set()

    running.thread = threading.Thread(target=target, name=f"overlap-{name}", daemon=True)
    running.thread.start()
    return running
