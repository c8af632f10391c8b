"""Provoking journal events in bulk (KZ-97-04/05/06), from any action the device logs and the bench can undo.

Filling a journal to its capacity, or a year of it, takes hundreds of events. Any provocation the
device logs will do, as long as it changes nothing for good: a declared setting written alternately
with its test value and its original (config_change), the clock set alternately a second ahead and
back again, so it stays right (clock_set), a tamper input the rig drives, switched and released
(cover_open / cover_closed …). The profile says which the device logs and the rig which the bench
can drive; the first that is available, in that order (the least intrusive first), is used, and the
check names it. Not used in bulk: a wrong password (enough of them may lock the device's write access,
which the bench cannot undo) and interface outages (each takes the device's `down_after_s`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from harness.conformance.journal.provoke import config_writer, declared_kinds, writable_setting
from harness.events import TAMPER_INPUTS, EventKind, JournalEntry
from harness.reporting.texts import Msg
from harness.verdicts import Inconclusive

CLOCK_STEP = timedelta(seconds=1)  # each clock set moves the clock by this, the next one moves it back


@dataclass
class BulkProvocation:
    """``step(i)`` makes the device log the i-th event (one entry of one of ``kinds``); ``restore()``
    leaves the device as it was (which the device may log too: read the journal before it)."""

    how: str
    kinds: frozenset[EventKind]
    step: Callable[[int], None]
    restore: Callable[[], None]

    def logged(self, entry: JournalEntry) -> bool:
        """Whether ``entry`` is one this provocation makes (rather than one the device logged on its own)."""
        return entry.kind in self.kinds


def bulk_provocations(dut: Any) -> tuple[list[BulkProvocation], list[str]]:
    """Every bulk provocation this profile and bench allow, least intrusive first, and why each other
    kind of action is not available."""
    found: list[BulkProvocation] = []
    missing: list[str] = []
    setting = _setting(dut)
    if isinstance(setting, str):
        missing.append(setting)
    else:
        found.append(setting)
    clock = _clock(dut)
    if isinstance(clock, str):
        missing.append(clock)
    else:
        found.append(clock)
    tampers = _tampers(dut)
    if isinstance(tampers, str):
        missing.append(tampers)
    else:
        found.extend(tampers)
    return found, missing


def bulk_provocation(dut: Any) -> BulkProvocation:
    """The provocation for checks that need many events; INCONCLUSIVE, saying what is missing, when none."""
    found, missing = bulk_provocations(dut)
    if not found:
        raise Inconclusive(Msg("the bench cannot provoke events in bulk: the device logs no action the bench can undo "
                               "({missing})", missing=Msg.joined("; ", missing)))
    return found[0]


def _setting(dut: Any) -> BulkProvocation | str:
    writer = config_writer(dut)
    if writer is None:
        return "no writable setting with a test_value and a config_change code"
    setting = writable_setting(dut)
    assert setting is not None
    write, restore = writer
    return BulkProvocation(Msg("setting {value} written alternately with its test value and its original",
                               value=setting[0]),
                           frozenset({EventKind.CONFIG_CHANGE}), write, restore)


def _clock(dut: Any) -> BulkProvocation | str:
    clock = dut.profile.clock
    if clock is None or not clock.writable or EventKind.CLOCK_SET not in declared_kinds(dut):
        return "no writable clock with a clock_set code"
    return BulkProvocation(f"clock set alternately {CLOCK_STEP.total_seconds():g} s ahead and back (it stays right)",
                           frozenset({EventKind.CLOCK_SET}), *_ClockSteps(dut.device).actions())


class _ClockSteps:
    """Clock sets that leave the clock right. Each target is the harness's UTC plus the device's offset
    from it (``anchor``), measured once and again only when something else moved the device time by
    more than RESYNC (a fast-forward between steps): re-reading the clock before every set would lose
    the read's latency and, on a clock without sub-second registers, up to a second to truncation at
    every step — minutes over a journal's capacity."""

    RESYNC = timedelta(seconds=3)

    def __init__(self, device: Any) -> None:
        self.device = device
        self.anchor: timedelta | None = None
        self.ahead = False  # whether the last set left the clock CLOCK_STEP ahead

    def _set(self, ahead: bool) -> None:
        assert self.anchor is not None
        self.device.set_clock(datetime.now(UTC) + self.anchor + (CLOCK_STEP if ahead else timedelta(0)))
        self.ahead = ahead

    def step(self, _i: int) -> None:
        shown = self.device.read_clock().value - (CLOCK_STEP if self.ahead else timedelta(0))
        offset = shown - datetime.now(UTC)
        if self.anchor is None or abs(offset - self.anchor) > self.RESYNC:
            self.anchor = offset
        self._set(not self.ahead)

    def restore(self) -> None:
        if self.ahead:
            self._set(False)

    def actions(self) -> tuple[Callable[[int], None], Callable[[], None]]:
        return self.step, self.restore


def _tampers(dut: Any) -> list[BulkProvocation] | str:
    declared = set(declared_kinds(dut))
    driven = set(dut.tamper.inputs()) if dut.tamper is not None else set()
    found = [_tamper(dut, name, on, off if off in declared else None)
             for name, (on, off) in TAMPER_INPUTS.items() if name in driven and on in declared]
    return found or "no tamper input the rig drives whose events the journal declares"


def _tamper(dut: Any, name: str, on: EventKind, off: EventKind | None) -> BulkProvocation:
    """Each step one entry: switched and released alternately when both edges are logged, else a pulse."""

    def step(i: int) -> None:
        if off is not None:
            dut.tamper.set(name, i % 2 == 0)
        else:
            dut.tamper.set(name, True)
            dut.tamper.set(name, False)

    kinds = frozenset(k for k in (on, off) if k is not None)
    how = f"{name} input switched and released " + ("alternately" if off is not None else "at each step")
    return BulkProvocation(how, kinds, step, lambda: dut.tamper.set(name, False))
