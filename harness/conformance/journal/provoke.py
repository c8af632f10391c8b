"""What the journal checks share: the declared journal, entry identity, and the events the bench
can provoke (clock set, configuration write, tamper input, a wrong password) — each undone afterwards —
and how one provoked event is judged (also by the access-control suite's tamper check, KZ-94-03).

Every provocation goes through the Device API or a fault injector of the rig, never a driver or
a simulator, so the same matrix runs on a real bench with whatever injectors it wires.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from harness.conformance.bounds import EVENT_TIMESTAMP
from harness.conformance.cleanup import restoring
from harness.conformance.peer_channels import brief_outage, untestable
from harness.devices.api import DeviceRefused, WriteGuarded
from harness.events import TAMPER_INPUTS, EventKind, JournalEntry
from harness.reporting.texts import Msg
from harness.verdicts import Inconclusive

POWER_KINDS = (EventKind.POWER_DOWN, EventKind.POWER_UP)
Key = tuple[int, int, float, tuple[tuple[str, int], ...]]


def journal_of(dut: Any) -> Any:
    """The profile's journal declaration (``modbus.journal``, or ``dlms.journal``: its event logs); its absence
    FAILs (cl. 97 requires a journal of every meter)."""
    section = dut.profile.modbus or getattr(dut.profile, "dlms", None)
    journal = getattr(section, "journal", None)
    if journal is None:
        raise AssertionError(Msg("profile {model} declares no event journal (modbus.journal, dlms.journal); cl. 97 "
                                 "requires meters to record, store and transmit events", model=dut.profile.model))
    return journal


def declared_kinds(dut: Any) -> list[EventKind]:
    return sorted(set(journal_of(dut).codes.values()), key=lambda k: list(EventKind).index(k))


def key(entry: JournalEntry) -> Key:
    """What makes an entry the same entry when read again (sequence alone may restart)."""
    return entry.sequence, entry.code, entry.timestamp.timestamp(), tuple(sorted(entry.details.items()))


def new_entries(before: Iterable[JournalEntry], after: Iterable[JournalEntry]) -> list[JournalEntry]:
    seen = {key(e) for e in before}
    return [e for e in after if key(e) not in seen]


def device_clock(dut: Any) -> Any:
    """A clock reading, or INCONCLUSIVE: without the device's time no timestamp can be judged."""
    if dut.profile.clock is None or not dut.profile.maps_clock:
        raise Inconclusive(Msg("the profile declares no device clock, so journal timestamps cannot be judged"))
    return dut.device.read_clock()


def outside(ts: datetime, low: datetime, high: datetime) -> float:
    """Seconds ``ts`` lies outside [low, high] (negative before, positive after, 0 inside)."""
    if ts < low:
        return (ts - low).total_seconds()
    if ts > high:
        return (ts - high).total_seconds()
    return 0.0


@dataclass
class Provocation:
    """One way to make the DUT log one event of ``kind``: ``do`` provokes, ``undo`` restores."""

    kind: EventKind
    how: str
    do: Callable[[], None]
    undo: Callable[[], None] = lambda: None
    details: dict[str, int] | None = None  # the entry's details must include these (e.g. which interface)

    def matches(self, entry: JournalEntry) -> bool:
        return entry.kind == self.kind and all(entry.details.get(k) == v for k, v in (self.details or {}).items())


def writable_setting(dut: Any) -> tuple[str, float] | None:
    """A declared setting the harness may write (with its safe test value), or None."""
    section = dut.profile.modbus or getattr(dut.profile, "dlms", None)
    points = section.settings if section is not None else {}
    for name, p in points.items():
        if p.writable and p.test_value is not None:
            return name, p.test_value
    return None


def provocations(dut: Any) -> tuple[list[Provocation], dict[EventKind, str]]:
    """For each declared kind except power events (KZ-97-02 cuts power): how to provoke it on this
    bench, or why it cannot be."""
    out: list[Provocation] = []
    cannot: dict[EventKind, str] = {}
    device = dut.device
    for kind in declared_kinds(dut):
        if kind in POWER_KINDS:
            continue
        if kind == EventKind.CLOCK_SET:
            if dut.profile.clock is not None and dut.profile.clock.writable:
                out.append(Provocation(kind, Msg("clock set to the harness's UTC time"),
                                       lambda: device.set_clock(datetime.now(UTC))))
            else:
                cannot[kind] = "the clock is not declared writable"
        elif kind == EventKind.CONFIG_CHANGE:
            setting = writable_setting(dut)
            if setting is None:
                cannot[kind] = "no writable setting declares a test_value"
                continue
            name, value = setting
            original = device.read(name).value
            out.append(Provocation(kind, Msg("setting {name} written", name=name), lambda n=name,
                                   v=value: device.write(n, v),
                                   lambda n=name, v=original: device.write(n, v)))
        elif _tamper_input(kind) is not None:
            tamper = tamper_provocation(dut, kind)
            if isinstance(tamper, str):
                cannot[kind] = tamper
            else:
                out.append(tamper)
        elif kind == EventKind.AUTH_FAILURE:
            if not isinstance(device, WriteGuarded) or dut.profile.modbus is None \
                    or dut.profile.modbus.write_protection is None:
                cannot[kind] = "the device declares no password the bench could get wrong (modbus.write_protection)"
                continue
            out.append(Provocation(kind, Msg("unlock with a wrong password"), lambda: _wrong_unlock(device)))
        elif kind in (EventKind.CHANNEL_DOWN, EventKind.CHANNEL_UP):
            why = untestable(dut)
            if why is not None:
                cannot[kind] = why
                continue
            subject = dut.profile.interfaces.main.journal_subject
            out.append(Provocation(kind, "main interface cut until the device must notice, then restored",
                                   lambda: brief_outage(dut), dut.main_link.restore,
                                   None if subject is None else {"subject": subject}))
        else:
            cannot[kind] = "the bench has no way to provoke it (no injector for this event)"
    return out, cannot


def _tamper_input(kind: EventKind) -> str | None:
    return next((name for name, (on, off) in TAMPER_INPUTS.items() if kind in (on, off)), None)


def tamper_provocation(dut: Any, kind: EventKind) -> Provocation | str:
    """How the bench makes the device log a tamper kind (an edge of its input), or why it cannot."""
    inp = _tamper_input(kind)
    assert inp is not None, f"{kind} is not a tamper kind"
    if dut.tamper is None or inp not in dut.tamper.inputs():
        return f"the rig drives no {inp} tamper input (no control channel or relay)"
    on, _off = TAMPER_INPUTS[inp]
    active = kind == on
    return Provocation(kind, Msg("{inp} input activated", inp=inp) if active else Msg("{inp} input released", inp=inp),
                       lambda: _tamper_edge(dut, inp, active), lambda: dut.tamper.set(inp, False))


def tamper_kinds(dut: Any) -> list[EventKind]:
    """The tamper kinds the profile's journal declares (cover opened/closed, magnetic field …)."""
    return [k for k in declared_kinds(dut) if _tamper_input(k) is not None]


def _wrong_unlock(device: Any) -> None:
    """A wrong password, as anyone on the bus could try: the device may refuse it with an exception."""
    with contextlib.suppress(DeviceRefused):
        device.unlock(device.wrong_password())


def one_new_entry(check: Any, label: str, kind: EventKind, new: list[JournalEntry], low: datetime, high: datetime,
                  tol: float, matches: Callable[[JournalEntry], bool] | None = None) -> None:
    """Exactly one new entry of ``kind`` (that ``matches``), stamped within ``tol`` of the device-time
    window [low, high]."""
    matching = [e for e in new if (matches(e) if matches else e.kind == kind)]
    check.equal(Msg("{label}: new {value} entries", label=label, value=kind.value), len(matching), 1,
                note=Msg("{n} new entries in all: {value}", n=len(new),
                         value=', '.join(str(e.kind or e.code) for e in new) or 'none'))
    if len(matching) == 1:
        check.within(Msg("{label}: timestamp error",
                         label=label), outside(matching[0].timestamp, low, high), -tol, tol, unit="s",
                     note=Msg("stamped {isoformat}, event between {isoformat2} and {isoformat3} device time",
                              isoformat=matching[0].timestamp.isoformat(), isoformat2=low.isoformat(),
                              isoformat3=high.isoformat()))


def provoke_and_judge(dut: Any, check: Any, p: Provocation) -> None:
    """Provoke one event between two device clock reads (undone afterwards) and judge the journal's new
    entries: exactly one of the kind, stamped within the declared tolerance."""
    before = dut.device.read_journal()
    with restoring(p.undo):
        c0 = dut.device.read_clock()
        p.do()
        c1 = dut.device.read_clock()
        new = new_entries(before, dut.device.read_journal())
    low, high = min(c0.value, c1.value), max(c0.value, c1.value)
    one_new_entry(check, p.how, p.kind, new, low, high,
                  EVENT_TIMESTAMP.limit(check, journal_of(dut).timestamp_tolerance_s), p.matches)


def _tamper_edge(dut: Any, name: str, active: bool) -> None:
    """An edge of the input: to log a release, the input must first be active."""
    if not active:
        dut.tamper.set(name, True)
    dut.tamper.set(name, active)


def config_writer(dut: Any) -> tuple[Callable[[int], None], Callable[[], None]] | None:
    """(write, restore): ``write(i)`` makes one config_change (alternating the test value and the
    original), ``restore()`` puts the original back; None when the bench cannot write a setting."""
    setting = writable_setting(dut)
    if setting is None or EventKind.CONFIG_CHANGE not in declared_kinds(dut):
        return None
    name, value = setting
    original = dut.device.read(name).value

    def write(i: int) -> None:
        dut.device.write(name, value if i % 2 == 0 else original)

    return write, lambda: dut.device.write(name, original)


def provoke_config_change(dut: Any) -> None:
    """One recent config_change entry, if the bench can make one (and the setting put back)."""
    writer = config_writer(dut)
    if writer is not None:
        write, restore = writer
        with restoring(restore):
            write(0)
