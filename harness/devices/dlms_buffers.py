"""The dlms driver's reading of class 7 Profile generic objects: event logs -> ``JournalEntry``, the load profile
-> ``IntervalData`` (Blue Book 4.3.6).

Columns are found in each object's capture_objects (attribute 3), never assumed from positions; the buffer
(attribute 2) is read with selective access by range on its clock column (a range wide enough for any entry,
so the whole journal comes back), reassembled from blocks by the driver's GET. Event codes mean what the
profile's code table of *that* log says; status bits what its ``status_bits`` say; an energy column is scaled
by the scaler_unit its register reports, which must agree with the profile.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cmp_to_key
from typing import TYPE_CHECKING, Any

from harness.config.dlms_map import CLASS_CLOCK, DLMS_UNITS, obis_bytes
from harness.config.dlms_profiles import CLASS_PROFILE_GENERIC, CapturedValues, DlmsLoadProfile
from harness.devices.api import DeviceError, DeviceRefused, NotDeclared
from harness.devices.dlms_results import AccessResult
from harness.events import JournalEntry
from harness.intervals import IntervalData
from harness.reporting.texts import Msg

if TYPE_CHECKING:
    from harness.devices.dlms import DlmsDevice
    from harness.devices.dlms_link import DlmsLink

BY_RANGE = 1
RANGE_FROM = datetime(1970, 1, 2, tzinfo=UTC)  # as wide as a date-time can say: every entry a meter may hold
RANGE_TO = datetime(2099, 12, 31, tzinfo=UTC)
MAX_BUFFER_BLOCKS = 8192  # a buffer of a few hundred entries at a small PDU is a few hundred blocks


@dataclass(frozen=True)
class RangeSelection:
    """A range_descriptor (selector 1) on the clock column, every column selected; encoded with ``dlms-cosem``'s
    data classes and the driver's own date-time (the library's signs the deviation one way only)."""

    clock_column: bytes  # the capture-object structure of the clock column
    low: bytes  # 12-byte date-times in the profile's sign convention
    high: bytes

    def to_bytes(self) -> bytes:
        from dlms_cosem import dlms_data

        return (bytes([BY_RANGE, 0x02, 0x04]) + self.clock_column + dlms_data.OctetStringData(self.low).to_bytes()
                + dlms_data.OctetStringData(self.high).to_bytes() + b"\x01\x00")


def _capture_object(class_id: int, obis: str, attribute: int) -> bytes:
    from dlms_cosem import dlms_data

    return (b"\x02\x04" + dlms_data.UnsignedLongData(class_id).to_bytes()
            + dlms_data.OctetStringData(obis_bytes(obis)).to_bytes() + dlms_data.IntegerData(attribute).to_bytes()
            + dlms_data.UnsignedLongData(0).to_bytes())


class BufferReader:
    """Reads a DLMS device's Profile generic objects (one per driver instance; columns learnt once per object)."""

    def __init__(self, device: DlmsDevice) -> None:
        self.device = device
        self.map = device.map
        self._columns: dict[str, list[tuple[int, bytes, int]]] = {}

    # ---- generic ------------------------------------------------------------------------------------
    def columns(self, link: DlmsLink, obis: str) -> list[tuple[int, bytes, int]]:
        """The object's capture objects (class id, logical name, attribute), as the meter reports them."""
        known = self._columns.get(obis)
        if known is None:
            got = self._get(link, obis, 3, None)
            try:
                known = [(int(c[0]), bytes(c[1]), int(c[2])) for c in got]
            except (TypeError, ValueError, IndexError):
                raise DeviceError(Msg("{device}: capture_objects of {obis} are not a list of "
                                      "(class, logical name, attribute, index): {got!r}",
                                      device=self.device.name, obis=obis, got=got)) from None
            self._columns[obis] = known
        return known

    def column(self, columns: list[tuple[int, bytes, int]], obis: str, owner: Msg, what: Msg,
               class_id: int | None = None) -> int:
        """The index of the column capturing attribute 2 of ``obis`` (of class ``class_id`` when given)."""
        ln = obis_bytes(obis)
        for i, (c, name, attribute) in enumerate(columns):
            if name == ln and attribute == 2 and (class_id is None or c == class_id):
                return i
        shown = ", ".join(".".join(str(b) for b in n) + f"/{a}" for _, n, a in columns)
        raise DeviceError(Msg("{device}: {owner} captures no {what} ({obis} attribute 2); it captures {shown}",
                              device=self.device.name, owner=owner, what=what, obis=obis, shown=shown))

    def buffer(self, link: DlmsLink, obis: str, clock_index: int) -> list[list[Any]]:
        """Every entry of the buffer, by a range of its clock column."""
        assert self.map.clock is not None
        selection = RangeSelection(_capture_object(CLASS_CLOCK, self.map.clock.obis, 2),
                                   self.device.encode_time(RANGE_FROM), self.device.encode_time(RANGE_TO))
        rows = self._get(link, obis, 2, selection)
        if not isinstance(rows, list) or any(not isinstance(r, list) for r in rows):
            raise DeviceError(Msg("{device}: the buffer of {obis} is not an array of structures",
                                  device=self.device.name, obis=obis))
        width = len(self._columns[obis])
        short = [r for r in rows if len(r) != width]
        if short:
            raise DeviceError(Msg("{device}: an entry of {obis} has {n} values, its capture_objects {width}",
                                  device=self.device.name, obis=obis, n=len(short[0]), width=width))
        return rows

    def _get(self, link: DlmsLink, obis: str, attribute: int, selection: Any) -> Any:
        value = self.device.get_on(link, [self.device.attribute(CLASS_PROFILE_GENERIC, obis, attribute)],
                                   selection=selection, max_blocks=MAX_BUFFER_BLOCKS)[0]
        if isinstance(value, AccessResult):
            raise DeviceRefused(Msg("{device}: GET of {obis} attribute {attribute} answered {value}",
                                    device=self.device.name, obis=obis, attribute=attribute, value=value),
                                value.code)
        return value

    def timestamp(self, raw: Any, where: Msg) -> datetime:
        if not isinstance(raw, bytes | bytearray):
            raise DeviceError(Msg("{device}: {where}: the clock column holds {raw!r}, not a date-time",
                                  device=self.device.name, where=where, raw=raw))
        return self.device.decode_time(bytes(raw))[0]

    # ---- the journal --------------------------------------------------------------------------------
    def journal(self, link: DlmsLink) -> list[JournalEntry]:
        spec = self.map.journal
        if spec is None or self.map.clock is None:
            raise NotDeclared(Msg("{device}: profile {model} declares no event logs (dlms.journal)",
                                  device=self.device.name, model=self.device.profile.model))
        logs: list[list[JournalEntry]] = []
        for name, log in spec.logs.items():
            entries: list[JournalEntry] = []
            logs.append(entries)
            owner = Msg("event log {name} ({obis})", name=name, obis=log.obis)
            cols = self.columns(link, log.obis)
            at = self.column(cols, self.map.clock.obis, owner, Msg("clock"), CLASS_CLOCK)
            code_at = self.column(cols, log.event_code, owner, Msg("event code"))
            seq_at = self.column(cols, spec.sequence, owner, Msg("entry number"))
            for row in self.buffer(link, log.obis, at):
                code, seq = row[code_at], row[seq_at]
                if not isinstance(code, int) or not isinstance(seq, int):
                    raise DeviceError(Msg("{device}: {owner}: an entry's code {code!r} or number {seq!r} "
                                          "is not an integer", device=self.device.name, owner=owner, code=code,
                                          seq=seq))
                entries.append(JournalEntry(seq, self.timestamp(row[at], owner), log.codes.get(code), code))
        return merged(logs, spec.sequence_modulo)

    # ---- the load profile ---------------------------------------------------------------------------
    def load_profile(self, link: DlmsLink) -> list[IntervalData]:
        spec = self.map.load_profile
        if spec is None or self.map.clock is None:
            raise NotDeclared(Msg("{device}: profile {model} declares no load profile (dlms.load_profile)",
                                  device=self.device.name, model=self.device.profile.model))
        owner = Msg("the load profile ({obis})", obis=spec.obis)
        cols = self.columns(link, spec.obis)
        at = self.column(cols, self.map.clock.obis, owner, Msg("clock"), CLASS_CLOCK)
        status_at = self.column(cols, spec.status, owner, Msg("status word"))
        channel_at = {ch: self.column(cols, c.obis, owner, Msg("{channel} register", channel=ch.value), 3)
                      for ch, c in spec.channels.items()}
        steps = self._channel_steps(link, spec)
        rows = self.buffer(link, spec.obis, at)
        out: list[IntervalData] = []
        previous: dict[Any, int] | None = None
        for row in rows:
            status = row[status_at]
            raw = {ch: row[i] for ch, i in channel_at.items()}
            if not isinstance(status, int) or any(not isinstance(v, int) for v in raw.values()):
                raise DeviceError(Msg("{device}: {owner}: an entry holds {row!r}, not integers",
                                      device=self.device.name, owner=owner, row=row))
            end = self.timestamp(row[at], owner).astimezone(UTC)
            flags = frozenset(f for f, bit in spec.status_bits.items() if status >> bit & 1)
            if spec.values == CapturedValues.TOTALS:
                if previous is not None:  # the oldest entry's increments are unknown: its predecessor is gone
                    out.append(IntervalData(end, {ch: (v - previous[ch]) * steps[ch] for ch, v in raw.items()},
                                            flags, status))
                previous = raw
            else:
                out.append(IntervalData(end, {ch: v * steps[ch] for ch, v in raw.items()}, flags, status))
        return out

    def _channel_steps(self, link: DlmsLink, spec: DlmsLoadProfile) -> dict[Any, float]:
        """Each energy column's step in Wh / varh, from the scaler_unit its register reports (it must agree with
        the profile's)."""
        from harness.config.dlms_map import CLASS_REGISTER

        got = self.device.get_on(link, [self.device.attribute(CLASS_REGISTER, c.obis, 3)
                                        for c in spec.channels.values()])
        steps = {}
        for (ch, col), su in zip(spec.channels.items(), got, strict=True):
            if isinstance(su, AccessResult):
                raise DeviceRefused(Msg("{device}: scaler_unit of {obis} ({channel}) answered {su}",
                                        device=self.device.name, obis=col.obis, channel=ch.value, su=su), su.code)
            try:
                scaler, unit = int(su[0]), int(su[1])
            except (TypeError, ValueError, IndexError):
                raise DeviceError(Msg("{device}: scaler_unit of {obis} is not two integers: {su!r}",
                                      device=self.device.name, obis=col.obis, su=su)) from None
            if (scaler, unit) != (col.scaler, DLMS_UNITS[col.unit]):
                raise DeviceError(Msg("{device}: {obis} ({channel}) reports scaler_unit 10^{scaler} unit {unit}; the "
                                      "profile declares 10^{declared_scaler} {declared_unit}", device=self.device.name,
                                      obis=col.obis, channel=ch.value, scaler=scaler, unit=unit,
                                      declared_scaler=col.scaler, declared_unit=col.unit))
            steps[ch] = col.step
        return steps


def merged(logs: list[list[JournalEntry]], modulo: int) -> list[JournalEntry]:
    """The logs' entries (each log oldest first) as one journal in entry-number order: a number after another is
    at most half the counter's range ahead of it, so a 16-bit number that rolled over still comes after 65535."""
    def before(a: JournalEntry, b: JournalEntry) -> int:
        ahead = (b.sequence - a.sequence) % modulo
        return 0 if ahead == 0 else -1 if ahead < modulo // 2 else 1

    out: list[JournalEntry] = []
    at = [0] * len(logs)
    for _ in range(sum(map(len, logs))):
        heads = [i for i, log in enumerate(logs) if at[i] < len(log)]
        first = min(heads, key=cmp_to_key(lambda i, j: before(logs[i][at[i]], logs[j][at[j]])))
        out.append(logs[first][at[first]])
        at[first] += 1
    return out
