"""The DUT's essential function while it is attacked, and after: the monitor, the baseline, nothing lost.

ISASecure CRT judges a device by whether it keeps doing its job under attack, not by whether it answers
the garbage. For a meter the job is metering and answering: the monitor reads the energy totals (any
declared point on a device without energy registers) every ``monitor_interval_s`` on the Device API while
the campaign runs, and each answer must come within the declared ``response_time_s``. Afterwards the
device must be fully functional with no data lost: it answers, the counters continue from where they were
(never lower) and still accumulate under the bench's reference load, and the journal keeps every entry it
had.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from harness.conformance.energy import elapse_device_time
from harness.conformance.robustness import amr_essential
from harness.devices.api import DeviceError, NotDeclared
from harness.quantities import EnergyRegister, energy_registers
from harness.reporting.outcome import exc_text
from harness.reporting.texts import Msg

STEPS_TO_SEE = 10  # device time let pass afterwards: enough for the reference load to move a counter this much


def essential_quantities(dut: Any) -> list[str]:
    """Energy totals when the profile declares them, else its process values, else its first point; an AMR
    server's meter list (amr_essential.py)."""
    if amr_essential.is_amr(dut):
        return [amr_essential.ESSENTIAL]
    totals = [r.name for r in energy_registers(dut.profile.tariff_count)
              if r.tariff is None and dut.profile.declares(r.name)]
    if totals:
        return totals
    points = (dut.profile.modbus or dut.profile.opcua).points
    process = [n for n, p in points.items() if str(getattr(p, "kind", "")) == "process_value"]
    return process[:2] or [next(iter(points))]


@dataclass(frozen=True)
class Sample:
    t: float  # wall time the read was sent
    latency_s: float
    values: dict[str, float | int | str] | None
    error: str | None = None


@dataclass
class Monitor:
    """Reads the essential quantities in a thread of its own until stopped (bounded by the caller's ``with``).
    Not ``threaded`` on a serial line, which carries one exchange at a time: the campaign calls ``take()``
    between its frames."""

    dut: Any
    quantities: list[str]
    interval_s: float
    threaded: bool = True
    samples: list[Sample] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Monitor:
        if not self.threaded:
            return self
        self._thread = threading.Thread(target=self._run, name="essential-function-monitor", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            t = self.dut.timing
            self._thread.join(timeout=(t.retries + 1) * (t.request_timeout_s + 0.3) + self.interval_s + 1)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.take()
            self._stop.wait(self.interval_s)

    def take(self) -> Sample:
        sample = read_sample(self.dut, self.quantities)
        self.samples.append(sample)
        return sample

    @property
    def down(self) -> bool:
        """The last read failed (after the driver's own retries): the essential function is gone."""
        return bool(self.samples) and self.samples[-1].error is not None

    def first_bad(self, limit_s: float) -> Sample | None:
        """The first read that failed or came later than ``limit_s`` (None: every one was fine)."""
        return next((s for s in self.samples if s.error is not None or s.latency_s > limit_s), None)

    def last_timely(self, limit_s: float) -> float | None:
        """Wall time of the last read answered within ``limit_s`` before the first bad one (None: never one)."""
        bad = self.first_bad(limit_s)
        fine = [s.t for s in self.samples if bad is None or s.t < bad.t]
        return fine[-1] if fine else None

    def last_good(self) -> float | None:
        """Wall time of the last read that was answered before the first failure (None: never one)."""
        good = None
        for s in self.samples:
            if s.error is not None:
                break
            good = s.t
        return good


def read_sample(dut: Any, quantities: list[str]) -> Sample:
    t0 = time.time()
    if amr_essential.is_amr(dut):
        try:
            values = amr_essential.read_meters(dut)
        except DeviceError as exc:
            return Sample(t0, time.time() - t0, None, exc_text(exc))
        return Sample(t0, time.time() - t0, values)
    try:
        readings = dut.device.read_many(quantities)
    except DeviceError as exc:
        return Sample(t0, time.time() - t0, None, exc_text(exc))
    return Sample(t0, time.time() - t0, {q: r.value for q, r in readings.items()})


@dataclass(frozen=True)
class Baseline:
    sample: Sample
    journal: list[Any] | None
    stored: dict[str, set[str]] | None = None  # an AMR server's stored readings, per meter


def baseline(dut: Any, quantities: list[str]) -> Baseline:
    """What the device holds before the attack (a device that does not answer now cannot be judged)."""
    from harness.verdicts import Inconclusive

    sample = read_sample(dut, quantities)
    if sample.error is not None:
        raise Inconclusive(Msg("the DUT does not answer before the campaign: {error}", error=sample.error))
    if amr_essential.is_amr(dut):
        return Baseline(sample, None, amr_essential.with_a_reading(dut, list(sample.values or {})))
    return Baseline(sample, _journal(dut))


def _journal(dut: Any) -> list[Any] | None:
    try:
        return dut.device.read_journal()
    except (NotDeclared, NotImplementedError):
        return None


def judge_monitor(check: Any, monitor: Monitor, limit_s: float) -> None:
    """During the campaign: every read answered, each within the declared time, counters never lower."""
    answered = [s for s in monitor.samples if s.error is None]
    failed = [s for s in monitor.samples if s.error is not None]
    check.at_least(Msg("essential function: reads during the campaign"), len(monitor.samples), 1)
    check.equal(Msg("essential function: reads that failed"), len(failed), 0,
                note=Msg("first: {error}", error=failed[0].error) if failed else "")
    if answered:
        slowest = max(s.latency_s for s in answered)
        check.at_most(Msg("essential function: slowest answer"), slowest, limit_s, unit="s",
                      note=Msg("the profile's modbus/opcua response_time_s (amr: timings.response_time_s), else the "
                               "rig's request_timeout_s"))
    counters = [q for q in monitor.quantities if EnergyRegister.parse(q) is not None]
    back = largest_step_back([{q: s.values[q] for q in counters if q in s.values} for s in answered if s.values])
    if back is not None:
        check.at_most(Msg("essential function: largest step back of a counter between reads"), back, 0.0)


def largest_step_back(series: list[dict[str, Any]]) -> float | None:
    worst: float | None = None
    for before, after in itertools.pairwise(series):
        for q, v in before.items():
            if isinstance(v, int | float) and isinstance(after.get(q), int | float):
                worst = max(worst or 0.0, float(v) - float(after[q]))
    return worst


def nothing_lost(check: Any, dut: Any, base: Baseline, quantities: list[str]) -> bool:
    """After the campaign: answering, counters continued and accumulating, journal intact. False when the
    DUT does not answer at all (the caller restores it for the rest of the run)."""
    after = read_sample(dut, quantities)
    check.equal(Msg("answers after the campaign"), after.error or Msg("answered"), Msg("answered"))
    if after.values is None or base.sample.values is None:
        return False
    if base.stored is not None:
        amr_essential.nothing_lost(check, dut, base.sample.values, base.stored, after.values)
        return True
    for q in (q for q in quantities if EnergyRegister.parse(q) is not None):  # counters only, not temperatures
        b, a = base.sample.values.get(q), after.values.get(q)
        if isinstance(b, int | float) and isinstance(a, int | float):
            check.at_least(Msg("{q} after the campaign vs before (no counter lost)", q=q), float(a), float(b))
    _still_accumulating(check, dut, after, quantities)
    if base.journal is not None:
        now = _journal(dut) or []
        kept = {(e.sequence, e.code) for e in now}
        newest = max((e.sequence for e in now), default=0)
        capacity = getattr(getattr(dut.profile.modbus, "journal", None), "capacity", None) or len(base.journal)
        due = [e for e in base.journal if e.sequence > newest - capacity]  # overwritten ones excepted
        missing = [e.sequence for e in due if (e.sequence, e.code) not in kept]
        check.equal(Msg("journal entries from before the campaign missing afterwards"), len(missing), 0,
                    note=Msg("sequences {value}", value=missing[:10]) if missing else Msg("{n} entries checked",
                                                                                          n=len(due)))
    return True


def _still_accumulating(check: Any, dut: Any, after: Sample, quantities: list[str]) -> None:
    """Let enough device time pass for the reference load to move the first energy total by STEPS_TO_SEE of its
    resolution; it must move (the meter still meters)."""
    load = dut.spec.reference_load
    regs = [r for r in energy_registers(dut.profile.tariff_count) if r.name in quantities]
    moving = [r for r in regs if load is not None and load.power_of(r.channel.value) > 0]
    if not moving or after.values is None:
        return
    reg = moving[0]
    reading = dut.device.read(reg.name)
    step = reading.resolution or 1.0
    seconds = STEPS_TO_SEE * step * 3600.0 / load.power_of(reg.channel.value)
    if not dut.time.fast and seconds > dut.timing.max_wall_wait_s:
        check.measure(Msg("{name} still accumulating", name=reg.name), Msg("not observed"), passed=True,
                      note=Msg("needs {seconds:.0f} s of device time, beyond timing.max_wall_wait_s", seconds=seconds))
        return
    elapse_device_time(dut, seconds)
    later = dut.device.read(reg.name).value
    check.at_least(Msg("{name} advance over {seconds:.0f} device seconds after the campaign", name=reg.name,
                       seconds=seconds),
                   float(later) - float(reading.value), step, unit=reading.unit,
                   note=Msg("reference load: expect about {steps_to_see} steps", steps_to_see=STEPS_TO_SEE))


def restore(dut: Any) -> Msg | None:
    """A DUT left dead or hung by an attack is power-cycled (when the rig can), so that the run goes on."""
    if dut.power is None:
        return None
    with contextlib.suppress(Exception):
        dut.power.off()
    try:
        dut.power.on()
    except Exception as exc:  # the evidence says so; the next check will find it down
        return Msg("power-cycled, still down: {exc}", exc=exc)
    return Msg("power-cycled (off, on) to let the run go on")
