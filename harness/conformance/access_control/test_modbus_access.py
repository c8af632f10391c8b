"""cl. 94 / 78 for Modbus meters: what a meter has measured cannot be changed over the bus, and tampering with
it is logged. Energy registers refuse every write (IEC 62443-3-3 SR 3.1, communication integrity); the clock and
settings are written only after the declared unlock with the lab's password, never without it or with a wrong
one (SR 1.1 / 1.2 identification and authentication, SR 2.1 authorization enforcement); each tamper input the
bench can drive is logged (SR 6.2, continuous monitoring; SR 2.8 auditable events).

The driver opens the write session itself for ordinary writes (clock and nvm suites, the journal's trigger
matrix). These checks use what it offers for negative ones (``WriteGuarded``): a write without the unlock, an
unlock with a wrong password, a write forced onto a register the profile does not declare writable. Before
writing "without the unlock" they let any session the harness opened run out, in device time — fast-forwarded
on a simulator, waited for on a real meter within ``timing.max_wall_wait_s``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from harness.conformance.cleanup import restoring
from harness.conformance.energy import declared_registers, elapse_device_time
from harness.conformance.journal.provoke import (
    device_clock,
    journal_of,
    provoke_and_judge,
    tamper_kinds,
    tamper_provocation,
    writable_setting,
)
from harness.devices.api import DeviceRefused, WriteGuarded
from harness.quantities import HEAT_COUNTERS
from harness.reporting.texts import Msg
from harness.verdicts import Inconclusive, NotApplicable

pytestmark = pytest.mark.dut_kind("electricity_meter", "heat_meter")

VISIBLE_STEPS = 1000  # KZ-94-01 writes this many register steps above the value read: the load adds far less
CLOCK_SHIFT = timedelta(hours=3, minutes=7)  # KZ-94-02 sets the clock this far off, as KZ-95-09 does
SESSION_MARGIN_S = 1.0  # device time let pass beyond the driver's bound on a session it opened


def _modbus(dut: Any) -> Any:
    if dut.profile.modbus is None:
        raise NotApplicable(Msg("not a Modbus device: its access control is judged by its own protocol's checks"))
    return dut.profile.modbus


def _guarded(dut: Any) -> Any:
    if not isinstance(dut.device, WriteGuarded):
        raise Inconclusive(Msg("the {name} driver cannot write without its unlock or force a write, so the "
                               "device's write protection cannot be shown", name=type(dut.device).__name__))
    return dut.device


def _answer(write: Callable[[], None]) -> tuple[bool, str]:
    """(refused, what the device answered) for one write."""
    try:
        write()
    except DeviceRefused as exc:
        return True, Msg("refused: exception {code:02d}", code=exc.code)
    return False, Msg("accepted")


# ---- KZ-94-01 --------------------------------------------------------------------------------------------
@pytest.mark.check("KZ-94-01", "energy registers cannot be written over the interface: a write of each is refused "
                   "with an exception and leaves its value unchanged [SR 3.1]", also=("78",))
def test_energy_registers_not_writable(dut, check):
    modbus = _modbus(dut)
    device = _guarded(dut)
    counters = [r.name for r in declared_registers(dut)] + [q for q in HEAT_COUNTERS if dut.profile.declares(q)]
    if not counters:
        raise Inconclusive(Msg("the profile declares no energy register to try a write on"))
    for name in counters:
        point = modbus.points[name]
        input_table = point.table.value == "input"
        if input_table and (clash := _holding_clash(modbus, point)) is not None:
            check.measure(Msg("{name}: write", name=name), Msg("not tried"), passed=True,
                          note=Msg("an input register, which no Modbus function writes; the holding registers of "
                                   "the same numbers are {clash}, which a write would change instead", clash=clash))
            continue
        before = device.read(name)
        step = VISIBLE_STEPS * float(before.resolution or 1.0)
        written = float(before.value) + step
        refused, answer = _answer(lambda n=name, v=written: device.force_write(n, v))
        after = device.read(name)
        change = float(after.value) - float(before.value)
        if input_table:
            check.measure(Msg("{name}: write of {written:.12g} {unit}", name=name, written=written,
                              unit=before.unit), answer, passed=True,
                          note=Msg("an input register: FC16 reaches the holding register of the same number, which "
                                   "a device may accept; what counts is that the energy register keeps its value"))
        else:
            check.measure(Msg("{name}: write of {written:.12g} {unit}", name=name, written=written,
                              unit=before.unit), answer, passed=refused,
                          limit=Msg("refused with an exception"))
        check.within(Msg("{name}: change read back",
                         name=name), round(change, 9), -float(before.resolution or 0.0), step / 2,
                     unit=before.unit, note=Msg("the write was {step:g} {unit} above the value read just before; "
                                                "the load adds far less in between", step=step, unit=before.unit))
        if change >= step / 2:  # the meter took it: put its count back (less what it metered meanwhile)
            with contextlib.suppress(Exception):
                device.force_write(name, before.value)
    check.require()


def _holding_clash(modbus: Any, point: Any) -> str | None:
    """What the profile declares in the holding registers an FC16 to an input point's address would hit."""
    end = point.address + point.register_count
    hit = [name for table, address, count, name in modbus.spans()
           if table.value == "holding" and address < end and point.address < address + count]
    return ", ".join(hit) or None


# ---- KZ-94-02 --------------------------------------------------------------------------------------------
@dataclass
class _Target:
    """A protected thing a write may change: ``state()`` reads it, ``write(unlock)`` tries one change,
    ``changed(before, after)`` says whether it moved, ``took(after)`` whether it now holds what was written,
    ``restore()`` puts it back as it was found."""

    label: str
    state: Callable[[], float]
    write: Callable[[bool], None]
    changed: Callable[[float, float], bool]
    took: Callable[[float], bool]
    restore: Callable[[], None]
    shown: Callable[[float], str]


def _clock_target(dut: Any, device: Any) -> _Target:
    """The clock, judged by its offset to the harness's UTC (read mid-exchange)."""
    tol = dut.timing.clock_tolerance_s

    def offset() -> float:
        r = device.read_clock()
        return r.value.timestamp() - (r.t_sent + r.t_received) / 2

    original = offset()
    target = original + CLOCK_SHIFT.total_seconds()
    return _Target(
        Msg("clock"), offset,
        lambda unlock: device.set_clock(datetime.now(UTC) + timedelta(seconds=target), unlock=unlock),
        lambda before, after: abs(after - before) > tol,
        lambda after: abs(after - target) <= tol,
        lambda: device.set_clock(datetime.now(UTC) + timedelta(seconds=original)),
        lambda off: Msg("{off:+.1f} s from the harness's UTC", off=off))


def _setting_target(device: Any, name: str, test_value: float) -> _Target | None:
    original = float(device.read(name).value)
    if original == test_value:
        return None

    def restore() -> None:
        if float(device.read(name).value) != original:
            device.write(name, original)

    return _Target(Msg("setting {name}", name=name), lambda: float(device.read(name).value),
                   lambda unlock: device.write(name, test_value, unlock=unlock),
                   lambda before, after: after != before, lambda after: after == test_value, restore,
                   lambda v: f"{v:g}")


def _protected(dut: Any, modbus: Any, check: Any) -> tuple[list[_Target], list[str]]:
    """The writable clock and settings the bench can try, and the writable ones left unprotected."""
    device = dut.device
    protection = modbus.write_protection
    targets: list[_Target] = []
    open_to_all: list[str] = []
    if dut.profile.clock is not None and dut.profile.clock.writable and modbus.clock is not None:
        if protection is None or not protection.guards("clock"):
            open_to_all.append("set its clock")
        else:
            targets.append(_clock_target(dut, device))
    if any(p.writable for p in modbus.settings.values()):
        setting = writable_setting(dut)
        if protection is None or not protection.guards("settings"):
            open_to_all.append("change its settings")
        elif setting is None:
            check.measure(Msg("settings"), Msg("not tried"), passed=True,
                          note=Msg("no writable setting declares a test_value"))
        elif (target := _setting_target(device, *setting)) is None:
            check.measure(Msg("setting {value}", value=setting[0]), Msg("not tried"), passed=True,
                          note=Msg("it already holds its test_value, so a write could not be seen"))
        else:
            targets.append(target)
    return targets, open_to_all


@pytest.mark.check("KZ-94-02", "the clock and settings are written only after the declared unlock: without it, or "
                   "after a wrong password, a write is refused with an exception and changes nothing; with it the "
                   "write is accepted [SR 1.1, SR 1.2, SR 2.1]", also=("78",))
def test_clock_and_settings_need_the_unlock(dut, check):
    modbus = _modbus(dut)
    device = _guarded(dut)
    if modbus.write_protection is None and not _anything_writable(dut, modbus):
        _read_only_refuses(dut, modbus, device, check)
        return
    _let_sessions_close(dut, device, check)
    targets, open_to_all = _protected(dut, modbus, check)
    if open_to_all:
        what = " or ".join(open_to_all)
        reason = (f"the meter declares no write protection: anyone on the bus can {what}"
                  if modbus.write_protection is None else
                  f"the declared write protection leaves it open: anyone on the bus can {what}")
        check.measure(Msg("write protection"), reason, passed=False, limit=Msg("modbus.write_protection protects them"))
        check.require()
    if not targets:
        raise Inconclusive(Msg("no protected write the bench can try and see (see the measurements)"))

    def put_back() -> None:
        for t in targets:
            t.restore()

    with restoring(put_back):
        for t in targets:
            _try(check, Msg("without the unlock"), t, unlock=False, expect_refused=True)
        refused, answer = _answer(lambda: device.unlock(device.wrong_password()))
        check.measure(Msg("unlock with a wrong password"), answer, passed=True,
                      note=Msg("the answer is informative; the writes after it must be refused"))
        for t in targets:
            _try(check, Msg("after a wrong password"), t, unlock=False, expect_refused=True)
        refused, answer = _answer(device.unlock)
        check.measure(Msg("unlock with the rig's password"), answer, passed=not refused, limit=Msg("accepted"),
                      note=Msg("is the rig's credentials.unlock this meter's password?") if refused else "")
        if not refused:
            for t in targets:
                _try(check, Msg("with the unlock"), t, unlock=False, expect_refused=False)
    check.require()


def _read_only_refuses(dut: Any, modbus: Any, device: Any, check: Any) -> None:
    """A profile that declares its clock and settings read-only is not taken at its word: the writes an intruder
    would send are sent, without any unlock. The clock gets a time 3 h 7 min off — one it must refuse —, and is
    read back (put back at once if it moved); each setting gets the value it already holds, so an accepted write
    changes nothing, and the acceptance itself is the finding."""
    tried = 0
    if dut.profile.clock is not None and modbus.clock is not None and modbus.clock.table.value == "holding":
        _try(check, "declared read-only", _clock_target(dut, device), unlock=False, expect_refused=True)
        tried += 1
    for name, point in modbus.settings.items():
        if point.table.value != "holding":
            continue
        held = device.read(name).value
        refused, answer = _answer(lambda n=name, v=held: device.force_write(n, v))
        check.measure(Msg("declared read-only: setting {name} write of the value it holds ({held:g})", name=name,
                          held=held), answer,
                      passed=refused, limit=Msg("refused with an exception"),
                      note="" if refused else Msg("a register the profile declares read-only took a write"))
        tried += 1
    if not tried:
        raise NotApplicable(Msg("the meter has no clock or setting in holding registers: nothing a write could "
                                "reach"))
    check.require()


def _anything_writable(dut: Any, modbus: Any) -> bool:
    clock = dut.profile.clock is not None and dut.profile.clock.writable and modbus.clock is not None
    return clock or any(p.writable for p in modbus.settings.values())


def _let_sessions_close(dut: Any, device: Any, check: Any) -> None:
    """Let a write session the harness opened earlier (another check's clock set, say) run out on the device."""
    left = device.session_closes_in()
    if left <= 0:
        check.measure(Msg("write session open from earlier writes"), Msg("none"), passed=True)
        return
    _, wall = elapse_device_time(dut, left + SESSION_MARGIN_S)
    check.measure(Msg("write session open from earlier writes"), Msg("let run out"), passed=True,
                  note=Msg("{value:.1f} s of device time let pass ({wall:.2f} s wall)", value=left + SESSION_MARGIN_S,
                           wall=wall))


def _try(check: Any, phase: str, t: _Target, unlock: bool, expect_refused: bool) -> None:
    before = t.state()
    refused, answer = _answer(lambda: t.write(unlock))
    after = t.state()
    if expect_refused:
        check.measure(Msg("{phase}: {label} write", phase=phase,
                          label=t.label), answer, passed=refused, limit=Msg("refused with an exception"))
        changed = t.changed(before, after)
        check.measure(Msg("{phase}: {label} after the write", phase=phase,
                          label=t.label), t.shown(after), passed=not changed,
                      limit=Msg("unchanged ({shown})", shown=t.shown(before)))
        if changed:
            t.restore()  # the next phase starts from where the thing was
    else:
        check.measure(Msg("{phase}: {label} write", phase=phase,
                          label=t.label), answer, passed=not refused, limit=Msg("accepted"))
        check.measure(Msg("{phase}: {label} after the write", phase=phase,
                          label=t.label), t.shown(after), passed=t.took(after),
                      limit=Msg("the written value"), note=Msg("was {shown}", shown=t.shown(before)))


# ---- KZ-94-03 --------------------------------------------------------------------------------------------
@pytest.mark.check("KZ-94-03", "each tamper input the bench can drive (cover, magnetic field) is logged in the "
                   "journal once, with a timestamp within the declared tolerance [SR 6.2]", also=("78",))
def test_tamper_inputs_logged(dut, check):
    journal_of(dut)
    kinds = tamper_kinds(dut)
    if not kinds:
        check.measure(Msg("tamper events in the journal"), Msg("none declared"), passed=False,
                      limit=Msg("cover / magnetic field events declared (modbus.journal.codes)"),
                      note=Msg("tampering with the meter would go unrecorded"))
        check.require()
    device_clock(dut)  # no clock, no judgement of timestamps
    cannot: dict[str, str] = {}
    driven = 0
    for kind in kinds:
        p = tamper_provocation(dut, kind)
        if isinstance(p, str):
            cannot[kind.value] = p
            continue
        provoke_and_judge(dut, check, p)
        driven += 1
    for kind_name, why in cannot.items():
        check.measure(Msg("{kind_name}: not provoked", kind_name=kind_name), why, passed=True, note=Msg("not judged"))
    if not driven:
        raise Inconclusive(Msg("the bench cannot drive any tamper input: {kinds}", kinds=_kinds(cannot)))
    check.require()
    if cannot:  # as KZ-97-01: what was driven passed, what was not is untried — never a PASS for all of them
        raise Inconclusive(Msg("tamper kinds the bench cannot provoke were not judged: {kinds}", kinds=_kinds(cannot)))


def _kinds(cannot: dict[str, Any]) -> Msg:
    """"kind (why); …" of the tamper kinds the bench cannot provoke, each reason translatable."""
    return Msg.joined("; ", (Msg("{kind} ({why})", kind=k, why=why) for k, why in cannot.items()))
