"""The load profile every simulated meter keeps (interval data, cl. 31), served in its profile's layout.

One record per capture period of *device* time: intervals end on multiples of the period in UTC
as the RTC shows it, so a clock set moves the boundaries with the clock, as in a real meter. The
device body (``modbus_device.py``) meters up to each boundary and hands the register totals at that
moment to ``close``; increments are differences of totals, so a day's increments add up to the
registers' own difference exactly. Records live in their own fsynced NVM file, saved once per
batch of closings (a day of fast-forward is one save, not 96) and before any read can show them.

Status, as DLMS meters keep it: at power-up the interval in progress at power-down closes with
POWER_FAILED, intervals wholly inside the outage are recorded with zero increments and POWER_FAILED
(no gaps), and the interval in progress at power-up is flagged when it closes; a clock set flags the
interval in progress with CLOCK_CHANGED (a set forward past boundaries fills them like an outage; a
set backward repeats end times, which the flag explains). The ``interval_*`` defects live here.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.config.load_profile import ModbusLoadProfile
from harness.intervals import IntervalFlag
from harness.simulators.intervals import CHANNELS, IntervalRecord, IntervalStatus
from harness.simulators.layout_image import render_store
from harness.simulators.nvstate import NvStore
from harness.simulators.regimage import encode_clock, encode_int
from harness.simulators.timeline import Timeline

DEFAULT_PERIOD_S = 900  # a meter whose profile maps no load-profile registers still keeps one
DEFAULT_CAPACITY = 2880  # (30 days of 15-minute records), e.g. for a concentrator's uplink
PERIOD_FACTOR = 2  # interval_period_mismatch: records every 2 declared periods
GAP_EVERY = 7  # interval_gap: every 7th record is lost
MISALIGN_S = 37  # interval_misaligned: end times stamped this late
TRUNCATE_TO = 100  # interval_increments_wrong: increments cut to whole 100 Wh / varh
STATUS_FLAGS = {IntervalStatus.POWER_FAILED: IntervalFlag.POWER_FAILED,
                IntervalStatus.CLOCK_CHANGED: IntervalFlag.CLOCK_CHANGED, IntervalStatus.INVALID: IntervalFlag.INVALID}


class LoadProfileStore(NvStore):
    """The load profile's own NVM file, next to the device's."""

    FILE = "load_profile.json"


class SimLoadProfile:
    """Closed records (a ring of ``capacity``), the interval in progress, ring head and window selector."""

    def __init__(self, spec: ModbusLoadProfile | None, state_dir: Path, defects: set[str], utc_offset_s: float) -> None:
        self.spec = spec
        self.defects = defects
        self.utc_offset_s = utc_offset_s
        declared = spec.capture_period_s if spec else DEFAULT_PERIOD_S
        self.period = declared * (PERIOD_FACTOR if "interval_period_mismatch" in defects else 1)
        self.capacity = spec.capacity if spec else DEFAULT_CAPACITY
        self.store = LoadProfileStore(state_dir)
        self.records: list[IntervalRecord] = []
        self.rows: list[list[int]] = []  # the records as saved, kept alongside: a save only dumps them
        self.head = 0
        self.written = 0  # records ever stored (a ring that keeps only this counter shows it)
        self.selector = 0
        self.next_seq = 1
        self.open_end = 0  # device UTC seconds at which the interval in progress ends
        self.open_totals: dict[str, int] = {}  # register totals when it began
        self.open_status = 0
        self.fresh: list[IntervalRecord] = []  # kept since the last save: the hook's next batch
        self.announced = 0  # seq through which the hook was called, as of the last save
        self.dirty = False

    @classmethod
    def power_on(cls, spec: ModbusLoadProfile | None, state_dir: Path, defects: set[str], utc_offset_s: float,
                 device_fresh: bool, now_utc: float, totals: dict[str, int]) -> SimLoadProfile:
        """Open the load profile and account for the outage (see the module docstring). Records of the
        last batch saved before power-down are offered to the hook again (it may not have run): the
        hook is called at least once per record, in order, and never before the record is on disk."""
        lp = cls(spec, state_dir, defects, utc_offset_s)
        state = None if device_fresh else lp.store.load()
        if state is None:
            lp.open_end, lp.open_totals = lp.boundary_after(now_utc), dict(totals)
        else:
            lp._restore(state)
            lp.fresh = [r for r in lp.records if r.seq > lp.announced]
            lp._power_up(now_utc, totals)
        lp.dirty = True
        return lp

    def boundary_after(self, utc: float) -> int:
        return (math.floor(utc / self.period) + 1) * self.period

    # ---- closing --------------------------------------------------------------------------------
    def close_due(self, now_phys: float, timeline: Timeline, accumulate: Callable[[float], None],
                  totals: Callable[[], dict[str, int]], flush: Callable[[], None]) -> None:
        """Close every interval whose end the RTC has passed by physical time ``now_phys``, metering up
        to each end first: a day of fast-forward steps through all 96 boundaries. Before the ring would
        overwrite a record that was never saved (a fast-forward longer than the capacity), ``flush``
        saves and hands over what is pending, so every record reaches the hook from disk."""
        while True:
            end_phys = timeline.phys_for_rtc(self.open_end + self.utc_offset_s, now_phys)
            if end_phys > now_phys:
                return
            accumulate(end_phys)
            self.close(totals())
            if len(self.fresh) >= self.capacity:
                flush()

    def close(self, totals: dict[str, int], flags: int = 0) -> None:
        """Close the interval in progress at its end, given the register totals at that moment."""
        inc = {ch: t - self.open_totals.get(ch, t) for ch, t in totals.items()}
        if "interval_increments_wrong" in self.defects:
            inc = {ch: v // TRUNCATE_TO * TRUNCATE_TO for ch, v in inc.items()}
        end = self.open_end + (MISALIGN_S if "interval_misaligned" in self.defects else 0)
        record = IntervalRecord(self.next_seq, end, self.period, inc, dict(totals), int(self.open_status | flags))
        self.next_seq += 1
        self.open_end += self.period
        self.open_totals = dict(totals)
        self.open_status = 0
        self.dirty = True
        if "interval_gap" in self.defects and record.seq % GAP_EVERY == 0:
            return  # lost: never stored, never sent
        self.records.append(record)
        self.rows.append([record.seq, record.end, record.period_s, record.status,
                          *(inc.get(c, 0) for c in CHANNELS), *(record.totals.get(c, 0) for c in CHANNELS)])
        if len(self.records) > self.capacity:
            del self.records[0], self.rows[0]
        self.head = (self.head + 1) % self.capacity
        self.written += 1
        self.fresh.append(record)

    def _fill_to(self, now_utc: float, totals: dict[str, int], flags: int) -> None:
        """Close the interval in progress and record every interval wholly up to ``now_utc`` with zero
        increments (no gaps); of an outage longer than the ring only its newest ``capacity`` intervals
        are written, which is all a ring would keep (the numbers of the rest are used up)."""
        if now_utc < self.open_end:
            return
        self.close(totals, flags)
        n = int((now_utc - self.open_end) // self.period) + 1 if now_utc >= self.open_end else 0
        skip = max(0, n - self.capacity)
        self.next_seq += skip
        self.open_end += skip * self.period
        for _ in range(n - skip):
            self.close(totals, flags)

    def _power_up(self, now_utc: float, totals: dict[str, int]) -> None:
        failed = 0 if "interval_power_cut_unflagged" in self.defects else IntervalStatus.POWER_FAILED
        if any(totals.get(ch, v) < v for ch, v in self.open_totals.items()):
            # the metering NVM kept less than the interval began with: its data cannot be trusted
            self.open_totals = {ch: min(v, totals.get(ch, v)) for ch, v in self.open_totals.items()}
            self.open_status |= IntervalStatus.INVALID
        if now_utc < self.open_end - self.period:  # the RTC went back while the power was off
            self.open_end = self.boundary_after(now_utc)
            self.open_status |= failed | IntervalStatus.CLOCK_CHANGED
            return
        self._fill_to(now_utc, totals, failed)
        self.open_status |= failed

    def clock_set(self, now_utc: float, totals: dict[str, int]) -> None:
        """The RTC was just set to ``now_utc`` (metering is up to date): move the boundaries with it."""
        changed = 0 if "interval_clock_set_unflagged" in self.defects else IntervalStatus.CLOCK_CHANGED
        if now_utc >= self.open_end:
            self._fill_to(now_utc, totals, changed)
        else:
            self.open_end = self.boundary_after(now_utc)
        self.open_status |= changed
        self.dirty = True

    # ---- NVM ------------------------------------------------------------------------------------
    def save(self) -> list[IntervalRecord]:
        """Persist if anything changed; returns the records kept since the last save, now on disk,
        for the device's ``on_interval_closed`` hook."""
        if not self.dirty:
            return []
        self.store.save({"version": 1, "records": self.rows, "head": self.head, "written": self.written,
                         "next_seq": self.next_seq,
                         "open": {"end": self.open_end, "totals": self.open_totals, "status": self.open_status},
                         "announced": self.announced})
        self.dirty = False
        held = {id(r) for r in self.records[-len(self.fresh):]} if self.fresh else set()
        batch = [r for r in self.fresh if id(r) in held]  # a replay a long outage overwrote is gone
        self.fresh = []
        if batch:
            self.announced = batch[-1].seq
        return batch

    def _restore(self, state: dict[str, Any]) -> None:
        n = len(CHANNELS)
        self.records = [IntervalRecord(row[0], row[1], row[2], dict(zip(CHANNELS, row[4:4 + n], strict=True)),
                                       dict(zip(CHANNELS, row[4 + n:4 + 2 * n], strict=True)), row[3])
                        for row in state["records"]]
        self.rows = [list(row) for row in state["records"]]
        self.head, self.next_seq, self.announced = state["head"], state["next_seq"], state["announced"]
        self.written = state.get("written", len(self.records))
        opened = state["open"]
        self.open_end, self.open_totals, self.open_status = opened["end"], opened["totals"], opened["status"]

    # ---- serving --------------------------------------------------------------------------------
    def render(self, name: str) -> list[int]:
        """Registers of one load-profile span (``head``, ``count``, ``selector``, ``slot:<i>``, ``window``)."""
        assert self.spec is not None
        return render_store(self.spec, name, len(self.records), self.head, self.selector,
                            lambda k: self.encode(self.records[k]), self.written)

    def encode(self, record: IntervalRecord) -> list[int]:
        """A record's registers, with pymodbus's converters (independent of the harness's codec).

        Each increment is the difference of the totals at the field's resolution, so increments a
        coarse field rounds still add up to the registers' difference."""
        assert self.spec is not None
        lay = self.spec.entry
        regs = [0] * lay.size

        def put(offset: int, words: list[int]) -> None:
            regs[offset:offset + len(words)] = words

        put(lay.end_time.offset, encode_clock(lay.end_time.clock, record.end + self.utc_offset_s, self.utc_offset_s))
        status = sum(1 << self.spec.status_bits[flag] for bit, flag in STATUS_FLAGS.items() if record.status & bit)
        put(lay.status.offset, encode_int(lay.status.type, lay.status.word_order.value, status))
        for channel, f in lay.channels().items():
            total, inc = record.totals.get(channel.value, 0), record.increments.get(channel.value, 0)
            raw = math.floor(total / f.factor + 1e-9) - math.floor((total - inc) / f.factor + 1e-9)
            put(f.offset, encode_int(f.type, f.word_order.value, raw))
        if lay.sequence is not None:
            put(lay.sequence.offset, encode_int(lay.sequence.type, lay.sequence.word_order.value, record.seq))
        return regs

    def status(self) -> dict[str, Any]:
        return {"records": len(self.records), "next_seq": self.next_seq, "open_end": self.open_end,
                "period_s": self.period}
