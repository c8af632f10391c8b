"""cl. 95 tariffs: only the active tariff's registers advance, and moving the device clock across
a switching time of the declared schedule moves accumulation to the next tariff."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from harness.conformance.cleanup import restoring
from harness.conformance.energy import Snapshot, elapse_device_time, snapshot
from harness.quantities import ACTIVE_TARIFF, EnergyChannel, EnergyRegister
from harness.reporting.texts import Msg
from harness.verdicts import Inconclusive, NotApplicable

pytestmark = pytest.mark.dut_kind("electricity_meter")


@dataclass(frozen=True)
class Switch:
    """A switching time of day where the tariff changes from ``before`` to ``after``."""

    at: timedelta  # since local midnight
    before: int
    after: int
    room_before: float  # seconds the ``before`` period lasts up to the switch
    room_after: float  # seconds the ``after`` period lasts from the switch


def switches(dut) -> list[Switch]:
    periods = dut.profile.tariffs.sorted_schedule()
    starts = [timedelta(hours=p.time_of_day.hour, minutes=p.time_of_day.minute) for p in periods]
    out = []
    for i, p in enumerate(periods):
        prev = periods[i - 1]
        if prev.tariff == p.tariff:
            continue
        # A period lasts until the next start where the tariff actually changes.
        room_before = _run_length(periods, starts, i, backwards=True)
        room_after = _run_length(periods, starts, i, backwards=False)
        out.append(Switch(starts[i], prev.tariff, p.tariff, room_before, room_after))
    return out


def _run_length(periods, starts, i, backwards: bool) -> float:
    n, day = len(periods), 86400.0
    tariff = periods[i - 1].tariff if backwards else periods[i].tariff
    j, length = i, 0.0
    for _ in range(n):
        if backwards:
            k = (j - 1) % n
            if periods[k].tariff != tariff:
                break
            length += ((starts[j] - starts[k]).total_seconds()) % day or day
            j = k
        else:
            k = (j + 1) % n
            length += ((starts[k] - starts[j]).total_seconds()) % day or day
            if periods[k].tariff != tariff:
                break
            j = k
    return length


def _preconditions(dut) -> None:
    if dut.profile.tariffs is None or dut.profile.tariff_count < 2:
        raise NotApplicable(Msg("the profile declares fewer than two tariffs: nothing switches"))
    if not (dut.profile.clock and dut.profile.clock.writable):
        raise Inconclusive(Msg("the device clock is not declared writable, so tariff switching cannot be provoked"))


def _tariff_regs(dut) -> dict[EnergyChannel, list[EnergyRegister]]:
    """Per channel with a load, its declared tariff registers."""
    n = dut.profile.tariff_count
    out = {}
    for channel in EnergyChannel:
        regs = [EnergyRegister(channel, t) for t in range(1, n + 1)]
        loaded = dut.spec.reference_load is None or dut.spec.reference_load.power_of(channel.value) > 0
        if loaded and all(dut.profile.declares(r.name) for r in regs):
            out[channel] = regs
    if not out:
        raise Inconclusive(Msg("no channel with a load declares all its tariff registers"))
    return out


def _observe(dut, regs, seconds: float) -> tuple[Snapshot, Snapshot]:
    flat = [r for rs in regs.values() for r in rs]
    before = snapshot(dut, flat)
    elapse_device_time(dut, seconds)
    return before, snapshot(dut, flat)


def _judge_active(check, regs, before: Snapshot, after: Snapshot, active: int, label: str) -> None:
    """Only ``active`` advanced, on every loaded channel (and by at least one step)."""
    for rs in regs.values():
        for r in rs:
            delta = after.value(r) - before.value(r)
            if r.tariff == active:
                check.at_least(Msg("{label}: {label2} advance", label=label,
                                   label2=r.label), delta, before.resolution(r), unit=r.unit,
                               note=Msg("T{active} active", active=active))
            else:
                check.equal(Msg("{label}: {label2} advance", label=label,
                                label2=r.label), delta, 0.0, unit=r.unit, note=Msg("T{active} active",
                                                                                             active=active))


def _margin(dut) -> float:
    return 2 * dut.timing.clock_tolerance_s + 1.0


def _window(dut, room: float) -> float:
    window = min(dut.timing.tariff_window_s, room - 2 * _margin(dut))
    if window <= 0:
        raise Inconclusive(Msg("a tariff period is shorter than the clock margins"))
    return window


def _set_local(dut, day_start: datetime, offset: timedelta) -> None:
    dut.device.set_clock(day_start + offset)


def _day_start(dut) -> datetime:
    now = dut.device.read_clock().value
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def _restore_clock(dut) -> None:
    dut.device.set_clock(datetime.now(UTC))


@pytest.mark.check("KZ-95-05", "only the active tariff's registers advance, for every tariff of the schedule")
def test_only_active_tariff_advances(dut, check):
    _preconditions(dut)
    regs = _tariff_regs(dut)
    day = _day_start(dut)
    with restoring(lambda: _restore_clock(dut)):
        seen = set()
        for sw in switches(dut):
            if sw.after in seen:
                continue
            seen.add(sw.after)
            window = _window(dut, sw.room_after)
            _set_local(dut, day, sw.at + timedelta(seconds=_margin(dut)))
            before, after = _observe(dut, regs, window)
            _judge_active(check, regs, before, after, sw.after, Msg("T{after} period", after=sw.after))
        check.equal(Msg("tariffs visited"), len(seen), dut.profile.tariff_count,
                    note=Msg("every declared tariff must be reachable through the schedule"))
    check.require()


@pytest.mark.check("KZ-95-06", "moving the clock across a switching time moves accumulation to the next "
                   "tariff and freezes the previous one")
def test_tariff_switches_at_boundary(dut, check):
    _preconditions(dut)
    regs = _tariff_regs(dut)
    day = _day_start(dut)
    margin = _margin(dut)
    with restoring(lambda: _restore_clock(dut)):
        for sw in switches(dut):
            label = f"{_hhmm(sw.at)} T{sw.before}→T{sw.after}"
            w_before, w_after = _window(dut, sw.room_before), _window(dut, sw.room_after)
            _set_local(dut, day, sw.at - timedelta(seconds=w_before + margin))
            before, at_switch = _observe(dut, regs, w_before)
            _judge_active(check, regs, before, at_switch, sw.before, Msg("{label} before", label=label))
            elapse_device_time(dut, 2 * margin)  # across the switching time
            crossed, after = _observe(dut, regs, w_after)
            _judge_active(check, regs, crossed, after, sw.after, Msg("{label} after", label=label))
            if dut.profile.declares(ACTIVE_TARIFF):
                check.equal(Msg("{label}: active tariff register",
                                label=label), dut.device.read(ACTIVE_TARIFF).value, sw.after)
    check.require()


def _hhmm(td: timedelta) -> str:
    m = int(td.total_seconds()) // 60
    return f"{m // 60:02d}:{m % 60:02d}"
