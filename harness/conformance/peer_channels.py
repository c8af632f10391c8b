"""The failover suite's observation for a DUT whose *peer* switches (profile ``interfaces``).

The harness is the head-end here: it reads the DUT on its main interface (through the rig's link
fault — proxy or namespace — so it can cut it) and on its reserve interface. One outage is
observed end to end and judged by several checks (the reserve kept serving the same data, the
main came back, the link status and the journal told the story), because each outage costs the
device's declared ``down_after_s`` twice over. A check that judges an outage it has already judged
(a re-run after a FAIL) gets a fresh one: a re-run never re-reads old evidence.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from harness.conformance.cleanup import restoring
from harness.conformance.energy import declared_registers
from harness.conformance.uplink import CADENCE_S, patience
from harness.devices.api import DeviceError, Reading
from harness.events import JournalEntry
from harness.quantities import IDENTITY_QUANTITIES, LINK_STATUS
from harness.reporting.texts import Msg
from harness.verdicts import Inconclusive, NotApplicable

KEY = "peer_outage"


@dataclass(frozen=True)
class Sample:
    """One read of the watched quantities on one interface (``error`` when it failed)."""

    interface: str
    t: float  # harness wall time, middle of the exchange
    values: dict[str, Any]
    error: str | None = None


@dataclass
class Outage:
    """Everything seen around one cut of the main interface."""

    interfaces: Any  # the profile's Interfaces
    watched: list[str]
    counters: list[str]
    t_cut: float = 0.0
    t_restore: float = 0.0
    t_main_back: float | None = None
    main_during_cut: list[Sample] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)  # both interfaces, in time order
    clock_offset_s: float | None = None  # device clock − harness clock, seconds
    journal_before: list[JournalEntry] | None = None
    journal_after: list[JournalEntry] | None = None
    journal_error: str | None = None
    judged_by: set[str] = field(default_factory=set)

    def on(self, interface: str, start: float = float("-inf"), end: float = float("inf")) -> list[Sample]:
        return [s for s in self.samples if s.interface == interface and start <= s.t <= end]


def untestable(dut: Any) -> str | None:
    """Why this bench cannot cut one of the DUT's interfaces while reading the other (None: it can)."""
    if getattr(dut.profile, "interfaces", None) is None:
        return (Msg("the profile declares one interface (no `interfaces`): channel redundancy for this device is "
                    "its concentrator's or head-end's, certified on their own rig"))
    if dut.reserve_device is None:
        return (Msg("this rig connects only the main interface; a rig with `reserve_transport` and `link: proxy` "
                    "or `netns` tests the switchover"))
    if dut.main_link is None:
        return "this rig cannot cut the main interface (`link: direct`); set `link: proxy` or `netns`"
    return None


def interfaces_of(dut: Any) -> Any:
    """The declared interfaces. N/A only where the device has one interface (its kind of redundancy is another
    device's); a device with two whose rig cannot reach the reserve or cut the main is untested here:
    INCONCLUSIVE, naming the rig setting that would test it."""
    why = untestable(dut)
    if why is None:
        return dut.profile.interfaces
    if getattr(dut.profile, "interfaces", None) is None:
        raise NotApplicable(why)
    raise Inconclusive(Msg("the profile declares a main and a reserve interface, but {why}", why=why))


def brief_outage(dut: Any) -> None:
    """Cut the main interface until the DUT must have noticed (reading the reserve meanwhile, as a
    head-end would), restore it and read it until it answers: one channel_down and one channel_up."""
    spec, link = dut.profile.interfaces, dut.main_link
    watched = [q for q in IDENTITY_QUANTITIES if dut.profile.declares(q)][:1] or list(dut.profile.modbus.points)[:1]
    with restoring(link.restore):
        link.cut()
        while time.time() < link.last_transition + spec.down_after_s + 2 * CADENCE_S:
            _read(dut.reserve_device, "reserve", watched)
            time.sleep(CADENCE_S)
        link.restore()
    deadline = link.last_transition + patience(spec.down_after_s)
    while _read(dut.device, "main", watched).error and time.time() < deadline:
        time.sleep(CADENCE_S)


def outage_for(dut: Any, check_id: str) -> Outage:
    """The outage ``check_id`` judges: the shared one, or a fresh one if it judged that already."""
    outage = dut.observations.get(KEY)
    if outage is None or check_id in outage.judged_by:
        outage = observe_outage(dut)
        dut.observations[KEY] = outage
    outage.judged_by.add(check_id)
    return outage


def _read(device: Any, interface: str, quantities: list[str]) -> Sample:
    t0 = time.time()
    try:
        got: dict[str, Reading] = device.read_many(quantities)
    except DeviceError as exc:
        return Sample(interface, (t0 + time.time()) / 2, {}, str(exc))
    return Sample(interface, (t0 + time.time()) / 2, {q: r.value for q, r in got.items()})


def observe_outage(dut: Any) -> Outage:
    """Read both interfaces, cut main, keep reading the reserve until the DUT has had time to notice
    (``down_after_s``), restore main, read until it serves again and the status shows it, read the journal."""
    spec = interfaces_of(dut)
    counters = [r.name for r in declared_registers(dut)]
    watched = [q for q in (*IDENTITY_QUANTITIES, LINK_STATUS) if dut.profile.declares(q)] + counters
    main, reserve, link = dut.device, dut.reserve_device, dut.main_link
    o = Outage(spec, watched, counters)
    down_wait = patience(spec.down_after_s)
    # Both interfaces in use before the cut (main, reserve, main: the reserve's values must lie between).
    for device, name in ((main, "main"), (reserve, "reserve"), (main, "main")):
        o.samples.append(s := _read(device, name, watched))
        if s.error:
            raise Inconclusive(Msg("the {name} interface does not answer before any fault: {error}", name=name,
                                   error=s.error))
    o.clock_offset_s = _clock_offset(main)
    o.journal_before = _journal(main, o)
    with restoring(link.restore):
        link.cut()
        o.t_cut = link.last_transition
        deadline = o.t_cut + down_wait
        while time.time() < deadline:
            o.samples.append(s := _read(reserve, "reserve", watched))
            if len(o.main_during_cut) < 1 and time.time() - o.t_cut > CADENCE_S:
                o.main_during_cut.append(_read(main, "main", watched[:1]))
            if time.time() - o.t_cut > spec.down_after_s and _shows_down(dut, s, "main"):
                break
            time.sleep(CADENCE_S)
        link.restore()
        o.t_restore = link.last_transition
    deadline = o.t_restore + down_wait
    while time.time() < deadline:
        o.samples.append(s := _read(main, "main", watched))
        if not s.error and o.t_main_back is None:
            o.t_main_back = s.t
        o.samples.append(r := _read(reserve, "reserve", watched))
        if o.t_main_back is not None and (_shows_up(dut, s) or _shows_up(dut, r) or LINK_STATUS not in watched):
            break
        time.sleep(CADENCE_S)
    o.journal_after = _journal(main if o.t_main_back is not None else reserve, o)
    return o


def status_bits(dut: Any, sample: Sample) -> dict[str, bool] | None:
    """Which interfaces the sample's link-status word shows up (None: not declared or not read)."""
    if sample.error or LINK_STATUS not in sample.values:
        return None
    word = int(sample.values[LINK_STATUS])
    return {name: bool(word >> i.status_bit & 1) for name, i in dut.profile.interfaces.named()}


def _shows_down(dut: Any, sample: Sample, interface: str) -> bool:
    bits = status_bits(dut, sample)
    return bits is not None and not bits[interface]


def _shows_up(dut: Any, sample: Sample) -> bool:
    bits = status_bits(dut, sample)
    return bits is not None and all(bits.values())


def _clock_offset(device: Any) -> float | None:
    """How far the device clock is ahead of the harness's (the journal's stamps are device time)."""
    try:
        c = device.read_clock()
    except (DeviceError, NotImplementedError):
        return None
    return c.value.timestamp() - (c.t_sent + c.t_received) / 2


def _journal(device: Any, o: Outage) -> list[JournalEntry] | None:
    try:
        return device.read_journal()
    except DeviceError as exc:
        o.journal_error = str(exc)
        return None
