"""The simulated DLMS meter's class 7 Profile generic objects: its event logs and its load profile, served from
the journal and load-profile model every simulated meter keeps (``simulators/journal.py``, ``load_profile.py``),
so their seeded defects apply over DLMS as over Modbus.

Attribute 2 (buffer) whole, or by range (selector 1: a range of the clock column) or by entry (selector 2) with
the columns asked for; 3 capture_objects, 4 capture_period, 5 sort_method, 7 entries_in_use, 8 profile_entries
(Blue Book 4.3.6). Encoded with this package's own A-XDR (``axdr``), never the driver's library.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from harness.config.dlms_map import CLASS_CLOCK, CLASS_DATA, CLASS_REGISTER, DLMS_UNITS, DlmsMap, obis_bytes
from harness.config.dlms_profiles import CapturedValues, DlmsJournal, DlmsLoadProfile
from harness.events import EventKind
from harness.intervals import IntervalFlag
from harness.simulators.dlms_meter import apdu
from harness.simulators.dlms_meter.axdr import (
    ARRAY,
    OCTET_STRING,
    STRUCTURE,
    TYPE_NAMES,
    AxdrError,
    Data,
    array,
    integer,
    octet_string,
    parse_date_time,
    structure,
)
from harness.simulators.intervals import IntervalRecord, IntervalStatus
from harness.simulators.journal import SimJournal
from harness.simulators.load_profile import SimLoadProfile

BY_RANGE, BY_ENTRY = 1, 2
FIFO = 1  # sort_method: first in, first out
STATUS_FLAGS = {IntervalStatus.POWER_FAILED: IntervalFlag.POWER_FAILED,
                IntervalStatus.CLOCK_CHANGED: IntervalFlag.CLOCK_CHANGED, IntervalStatus.INVALID: IntervalFlag.INVALID}

Column = tuple[int, bytes, int]  # class id, logical name, attribute of a capture object


@dataclass
class Profile:
    """One Profile generic: its capture objects, period, capacity and its rows (oldest first) as
    (time of the clock column in UTC seconds, encoded values by column)."""

    columns: list[Column]
    period_s: int
    capacity: int
    rows: Callable[[], list[tuple[float, list[bytes]]]]


class ProfileObjects:
    """The Profile generic objects a profile's ``dlms:`` section declares, over the meter's journal and load profile."""

    def __init__(self, dlms: DlmsMap, journal: SimJournal | None, load_profile: SimLoadProfile | None,
                 utc_offset_s: float, deviation: Callable[[], int], defects: set[str]) -> None:
        assert dlms.clock is not None or (dlms.journal is None and dlms.load_profile is None)
        self.map, self.journal, self.load_profile = dlms, journal, load_profile
        self.utc_offset_s, self.deviation, self.defects = utc_offset_s, deviation, defects
        self.clock: Column = (CLASS_CLOCK, dlms.clock.logical_name, 2) if dlms.clock else (CLASS_CLOCK, b"", 2)
        self.objects: dict[bytes, Profile] = {}
        self.unreadable: set[bytes] = set()
        if dlms.journal is not None and journal is not None:
            for log in dlms.journal.logs.values():
                self.objects[obis_bytes(log.obis)] = self._event_log(dlms.journal, log.obis)
                if "journal_unreadable" in defects:
                    self.unreadable.add(obis_bytes(log.obis))
        if dlms.load_profile is not None and load_profile is not None:
            self.objects[obis_bytes(dlms.load_profile.obis)] = self._load_profile(dlms.load_profile, load_profile)
        self.channel_registers = {obis_bytes(c.obis): (ch, c) for ch, c in dlms.load_profile.channels.items()} \
            if dlms.load_profile is not None and dlms.load_profile.values == CapturedValues.INCREMENTS else {}

    # ---- the objects --------------------------------------------------------------------------------
    def _event_log(self, spec: DlmsJournal, obis: str) -> Profile:
        log = next(log for log in spec.logs.values() if log.obis == obis)
        kinds = {k: c for c, k in log.codes.items()}
        sequence = (CLASS_DATA, obis_bytes(spec.sequence), 2)
        code = (CLASS_DATA, obis_bytes(log.event_code), 2)
        place = {"clock": self.clock, "code": code, "sequence": sequence}
        columns = [place[c.value] for c in spec.columns]
        modulo = spec.sequence_modulo

        def rows() -> list[tuple[float, list[bytes]]]:
            assert self.journal is not None
            out = []
            for entry in self.journal.entries:
                kind = EventKind(entry.kind)
                if kind not in kinds:
                    continue
                values = {sequence: integer(TYPE_NAMES[spec.sequence_type], entry.seq % modulo),
                          code: integer(TYPE_NAMES[log.code_type], kinds[kind]),
                          self.clock: self._date_time(entry.t)}
                out.append((entry.t - self.utc_offset_s, [values[c] for c in columns]))
            return out

        return Profile(columns, 0, spec.capacity, rows)

    def _load_profile(self, spec: DlmsLoadProfile, lp: SimLoadProfile) -> Profile:
        status: Column = (CLASS_DATA, obis_bytes(spec.status), 2)
        place = {"clock": self.clock, "status": status,
                 **{ch.value: (CLASS_REGISTER, obis_bytes(c.obis), 2) for ch, c in spec.channels.items()}}
        names = spec.column_order
        columns = [place[n] for n in names]

        def encode(record: IntervalRecord) -> list[bytes]:
            word = sum(1 << spec.status_bits[flag] for bit, flag in STATUS_FLAGS.items()
                       if record.status & bit and flag in spec.status_bits)
            values = {"clock": self._date_time(record.end + self.utc_offset_s),
                      "status": integer(TYPE_NAMES[spec.status_type], word)}
            for ch, col in spec.channels.items():
                total, inc = record.totals.get(ch.value, 0), record.increments.get(ch.value, 0)
                if spec.values == CapturedValues.TOTALS:
                    raw = math.floor(total / col.step + 1e-9)
                else:  # the difference of the totals at the column's resolution: rounded increments still add up
                    raw = math.floor(total / col.step + 1e-9) - math.floor((total - inc) / col.step + 1e-9)
                values[ch.value] = integer(TYPE_NAMES[col.type], max(0, raw))
            return [values[n] for n in names]

        def rows() -> list[tuple[float, list[bytes]]]:
            return [(float(r.end), encode(r)) for r in lp.records]

        return Profile(columns, spec.capture_period_s, lp.capacity, rows)

    def _date_time(self, local: float) -> bytes:
        from harness.simulators.dlms_meter.axdr import date_time

        dt = datetime(1970, 1, 1) + timedelta(seconds=local)
        return octet_string(date_time(dt.year, dt.month, dt.day, dt.isoweekday(), dt.hour, dt.minute, dt.second,
                                      dt.microsecond // 10000, self.deviation()))

    # ---- GET ----------------------------------------------------------------------------------------
    def holds(self, obis: bytes) -> bool:
        return obis in self.objects or obis in self.channel_registers

    def get(self, attr: apdu.Attribute) -> apdu.Result:
        if attr.obis in self.channel_registers:
            return self._channel_register(attr)
        profile = self.objects[attr.obis]
        if attr.class_id != 7:
            return apdu.OBJECT_CLASS_INCONSISTENT
        if attr.selection is not None and attr.attribute != 2:
            return apdu.OBJECT_UNAVAILABLE
        if attr.attribute == 1:
            return octet_string(attr.obis)
        if attr.attribute == 2:
            if attr.obis in self.unreadable:
                return apdu.READ_WRITE_DENIED
            return self._buffer(profile, attr.selection)
        if attr.attribute == 3:
            return array([structure(integer(TYPE_NAMES["long_unsigned"], c), octet_string(ln),
                                    integer(TYPE_NAMES["integer"], a), integer(TYPE_NAMES["long_unsigned"], 0))
                          for c, ln, a in profile.columns])
        if attr.attribute == 4:
            return integer(TYPE_NAMES["double_long_unsigned"], profile.period_s)
        if attr.attribute == 5:
            return integer(TYPE_NAMES["enum"], FIFO)
        if attr.attribute == 7:
            return integer(TYPE_NAMES["double_long_unsigned"], len(profile.rows()))
        if attr.attribute == 8:
            return integer(TYPE_NAMES["double_long_unsigned"], profile.capacity)
        return apdu.OBJECT_UNAVAILABLE

    def _channel_register(self, attr: apdu.Attribute) -> apdu.Result:
        """A load-profile energy column's own register (energy over the last capture period)."""
        channel, col = self.channel_registers[attr.obis]
        if attr.class_id != CLASS_REGISTER:
            return apdu.OBJECT_CLASS_INCONSISTENT
        if attr.attribute == 1:
            return octet_string(attr.obis)
        if attr.attribute == 2:
            last = self.load_profile.records[-1] if self.load_profile and self.load_profile.records else None
            inc = last.increments.get(channel.value, 0) if last else 0
            return integer(TYPE_NAMES[col.type], max(0, math.floor(inc / col.step + 1e-9)))
        if attr.attribute == 3:
            return structure(integer(TYPE_NAMES["integer"], col.scaler),
                             integer(TYPE_NAMES["enum"], DLMS_UNITS[col.unit]))
        return apdu.OBJECT_UNAVAILABLE

    def _buffer(self, profile: Profile, selection: tuple[int, Data] | None) -> apdu.Result:
        rows = profile.rows()
        picked = list(range(len(profile.columns)))
        if selection is not None:
            selector, parameters = selection
            try:
                if selector == BY_RANGE:
                    rows, picked = self._by_range(profile, rows, parameters)
                elif selector == BY_ENTRY:
                    rows, picked = _by_entry(profile, rows, parameters)
                else:
                    return apdu.OBJECT_UNAVAILABLE
            except (AxdrError, ValueError, TypeError, IndexError):
                return apdu.OTHER_REASON
        return array([structure(*(values[i] for i in picked)) for _, values in rows])

    def _by_range(self, profile: Profile, rows: list[tuple[float, list[bytes]]],
                  parameters: Data) -> tuple[list[tuple[float, list[bytes]]], list[int]]:
        """range_descriptor: restricting_object (a capture object), from_value, to_value, selected_values."""
        restricting, low, high, selected = _members(parameters, STRUCTURE, 4)
        target = _capture_object(restricting)
        if target != self.clock or target not in profile.columns:
            raise ValueError("this meter restricts a range by its clock column only")
        t0, t1 = self._utc(low), self._utc(high)
        kept = [(t, v) for t, v in rows if t0 <= t <= t1]
        return kept, _columns(profile, selected)

    def _utc(self, value: Data) -> float:
        if value.tag != OCTET_STRING:
            raise ValueError("a range bound is a date-time")
        year, month, day, hour, minute, second, hundredths, dev = parse_date_time(value.value)  # type: ignore[arg-type]
        local = (datetime(year, month, day, hour, minute, second, hundredths * 10000)
                 - datetime(1970, 1, 1)).total_seconds()
        if dev is None:
            return local - self.utc_offset_s
        sign = 1 if self.map.clock is None or self.map.clock.deviation == "local_to_utc" else -1
        return local + sign * dev * 60


def _members(data: Data, tag: int, n: int) -> tuple[Data, ...]:
    if data.tag != tag or len(data.value) != n:  # type: ignore[arg-type]
        raise ValueError(f"expected a structure of {n}")
    return data.value  # type: ignore[return-value]


def _capture_object(data: Data) -> Column:
    class_id, ln, attribute, _ = _members(data, STRUCTURE, 4)
    return int(class_id.value), bytes(ln.value), int(attribute.value)  # type: ignore[call-overload,arg-type]


def _columns(profile: Profile, selected: Data) -> list[int]:
    """selected_values: the capture objects asked for (an empty array: every column)."""
    if selected.tag != ARRAY:
        raise ValueError("selected_values is an array")
    wanted = [_capture_object(d) for d in selected.value]  # type: ignore[union-attr]
    if not wanted:
        return list(range(len(profile.columns)))
    return [profile.columns.index(c) for c in wanted]  # ValueError for a column the profile does not capture


def _by_entry(profile: Profile, rows: list[tuple[float, list[bytes]]],
              parameters: Data) -> tuple[list[tuple[float, list[bytes]]], list[int]]:
    """entry_descriptor: from_entry, to_entry (0: the last), from_selected_value, to_selected_value (0: the last),
    all counted from 1."""
    first, last, col0, col1 = (int(d.value) for d in _members(parameters, STRUCTURE, 4))  # type: ignore[call-overload]
    last = last or len(rows)
    col1 = col1 or len(profile.columns)
    if first < 1 or col0 < 1 or col1 > len(profile.columns) or col0 > col1:
        raise ValueError("entry descriptor out of range")
    return rows[first - 1:last], list(range(col0 - 1, col1))
