"""Modbus driver (TCP and RTU) on pymodbus 3.16's synchronous clients.

Every call has a timeout and a bounded number of retries, reconnects after a broken link or a
power cut, and is recorded to the transcript. Reads of several quantities are merged into as
few requests as the profile's register map allows (contiguous registers of one table), which is
both faster and atomic for the quantities in one request. A meter that guards its clock and
settings (``modbus.write_protection``) is unlocked with the rig's password before a protected write.
"""

from __future__ import annotations

import logging
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from harness.config.modbus_map import ModbusMap, ModbusPoint, RegisterTable, WriteProtection
from harness.config.profile import Profile
from harness.config.rig import Dut, Timing
from harness.config.write_protection import Protected
from harness.devices import codec
from harness.devices.api import (
    ClockReading,
    Device,
    DeviceError,
    DeviceRefused,
    DeviceTimeout,
    DeviceUnreachable,
    NotDeclared,
    Reading,
)
from harness.devices.transcript import VARIES, Transcript
from harness.events import JournalEntry
from harness.intervals import IntervalData
from harness.quantities import CLOCK
from harness.reporting.texts import Msg

# pymodbus logs every refused connection with a traceback; the transcript and our errors say it better.
logging.getLogger("pymodbus").setLevel(logging.CRITICAL)

EXCEPTION_NAMES = {1: "illegal function", 2: "illegal data address", 3: "illegal data value",
                   4: "server device failure", 6: "server device busy"}
_FORMS = 256  # transcript writers a device keeps, one per (function, address, count) it reads
UNLOCK_ROLE = "unlock"  # the rig's credentials entry that holds the password of modbus.write_protection


@dataclass(frozen=True)
class _Batch:
    table: RegisterTable
    address: int
    count: int
    members: tuple[tuple[str, ModbusPoint], ...]


def plan_batches(points: Sequence[tuple[str, ModbusPoint]], max_count: int) -> list[_Batch]:
    """Merge points into requests of contiguous registers of one table, at most ``max_count`` long."""
    batches: list[_Batch] = []
    ordered = sorted(points, key=lambda item: (item[1].table.value, item[1].address))
    current: list[tuple[str, ModbusPoint]] = []
    for name, point in ordered:
        if current:
            first, last = current[0][1], current[-1][1]
            end = last.address + last.register_count
            contiguous = point.table == first.table and point.address == end
            fits = point.address + point.register_count - first.address <= max_count
            if contiguous and fits:
                current.append((name, point))
                continue
            batches.append(_close(current))
        current = [(name, point)]
    if current:
        batches.append(_close(current))
    return batches


def _close(members: list[tuple[str, ModbusPoint]]) -> _Batch:
    first, last = members[0][1], members[-1][1]
    return _Batch(first.table, first.address, last.address + last.register_count - first.address, tuple(members))


# name, first and past-the-end offset in the batch's registers, (value, resolution) reader, unit, floating
_Member = tuple[str, int, int, Callable[[Sequence[int]], tuple[Any, float | None]], str | None, bool]


# One prepared request of a plan: the batch, its members, and all of them decoded at once (codec.batch_reader;
# None: each member through its own reader).
_Prepared = tuple[_Batch, list[_Member], Callable[[Sequence[int]], list[tuple[Any, float]]] | None]
# function code and pymodbus client method of each table's read
_READS = {RegisterTable.COIL: (1, "read_coils"), RegisterTable.DISCRETE_INPUT: (2, "read_discrete_inputs"),
          RegisterTable.HOLDING: (3, "read_holding_registers"), RegisterTable.INPUT: (4, "read_input_registers")}


def _prepare(batch: _Batch) -> _Prepared:
    """What ``read_many`` needs per point, worked out once per plan rather than on every read."""
    members: list[_Member] = []
    for name, point in batch.members:
        off = point.address - batch.address
        unit = None if point.type.value == "string" else point.canonical_unit
        members.append((name, off, off + point.register_count, codec.point_reader(point), unit,
                        point.type.is_float))
    together = codec.batch_reader([(point.address - batch.address, point) for _, point in batch.members])
    return batch, members, together


_new = object.__new__


def _reading(quantity: str, value: Any, unit: str | None, resolution: float | None, t_sent: float,
             t_received: float, floating: bool) -> Reading:
    """``Reading(...)`` without the frozen dataclass's ``__init__`` (one ``object.__setattr__`` per field):
    a read of the energy registers makes twenty of them, and that was a tenth of the driver's CPU per read."""
    reading = _new(Reading)
    reading.__dict__.update(quantity=quantity, value=value, unit=unit, resolution=resolution, t_sent=t_sent,
                            t_received=t_received, floating=floating)
    return reading


class ModbusDevice(Device):
    """A Modbus DUT reached over TCP or a serial line (RTU)."""

    def __init__(self, name: str, profile: Profile, dut: Dut, timing: Timing,
                 transcript: Transcript | None = None, endpoint: dict[str, Any] | None = None) -> None:
        super().__init__(name, profile)
        if profile.modbus is None:
            raise NotDeclared(Msg("profile {model} has no modbus section", model=profile.model))
        self.map: ModbusMap = profile.modbus
        self.unit_id = dut.unit_id
        self.timeout = timing.request_timeout_s
        self.retries = timing.retries
        self.transcript = transcript
        self._endpoint = endpoint or {}
        self._dut = dut
        self._client: Any = None
        self._plans: dict[tuple[str, ...], list[_Prepared]] = {}
        self._forms: dict[tuple[int, int, int], Callable[..., None]] = {}  # (fc, address, count) -> its writer
        # Write sessions (monotonic times): until when the driver counts on the session it opened — forgotten
        # on a reconnect, as a device may tie sessions to a connection — and until when the device may still
        # hold one open whatever happened to the link (what a check waits out to write "without the unlock").
        self._session_until: float | None = None
        self._may_be_open_until = 0.0

    # ---- connection --------------------------------------------------------------------------
    def _make_client(self) -> Any:
        transport = self._dut.transport
        if transport.tcp is not None:
            from harness.devices.tcp_client import TcpClient  # framed here: pymodbus's call path cost most

            host = self._endpoint.get("host", transport.tcp.host)
            port = self._endpoint.get("port", transport.tcp.port)
            return TcpClient(str(host), int(port), self.timeout)
        serial = transport.serial
        assert serial is not None
        from pymodbus import FramerType

        from harness.devices.rtu_client import RtuSerialClient  # answers without pymodbus's polling sleeps

        return RtuSerialClient(self._endpoint.get("serial_port", serial.port), framer=FramerType.RTU,
                               baudrate=serial.baudrate, parity=serial.parity, stopbits=serial.stopbits,
                               bytesize=serial.bytesize, timeout=self.timeout, retries=0)

    def _connected_client(self) -> Any:
        if self._client is None:
            self._client = self._make_client()
        if not self._client.connected and not self._client.connect():
            self._drop()
            return None
        return self._client

    def _drop(self) -> None:
        self._session_until = None  # unlocked again after the reconnect
        if self._client is not None:
            try:
                self._client.close()
            finally:
                self._client = None

    def close(self) -> None:
        self._drop()

    # ---- one exchange, with timeout, retries and transcript ----------------------------------
    def _exchange(self, op: str, call: Callable[[Any], Any], answered: Callable[..., None] | None = None,
                  **info: Any) -> tuple[Any, float, float]:
        """``call`` on a connected client, retried; every attempt recorded. ``answered``: the transcript's
        writer (``Transcript.form``) of this exchange's answer, (attempt, latency, registers) filled in."""
        from pymodbus.exceptions import ConnectionException, ModbusIOException

        failure: DeviceError | None = None
        for attempt in range(self.retries + 1):
            client = self._connected_client()
            t_sent = time.time()
            if client is None:
                failure = DeviceUnreachable(Msg("{device}: cannot connect ({value})", device=self.name,
                                                value=self._where()))
                self._record(op, info, attempt, t_sent, t_sent, error="unreachable")
                time.sleep(min(0.2, self.timeout))
                continue
            try:
                response = call(client)
            except (ModbusIOException, ConnectionException, OSError) as exc:
                t_received = time.time()
                self._drop()
                failure = DeviceTimeout(Msg("{device}: no valid answer to {op} within {timeout:g} s ({name})",
                                            device=self.name, op=op, timeout=self.timeout, name=type(exc).__name__))
                self._record(op, info, attempt, t_sent, t_received, error="timeout")
                continue
            t_received = time.time()
            if response.isError():
                code = getattr(response, "exception_code", 0)
                self._record(op, info, attempt, t_sent, t_received, exception=code)
                raise DeviceRefused(Msg("{device}: {op} answered with Modbus exception {code:02d} ({value})",
                                        device=self.name, op=op, code=code, value=EXCEPTION_NAMES.get(code, 'unknown')),
                                        code)
            if answered is not None:
                answered(attempt, round((t_received - t_sent) * 1000, 3), response.registers)
            else:
                self._record(op, info, attempt, t_sent, t_received, registers=getattr(response, "registers", None))
            return response, t_sent, t_received
        assert failure is not None
        raise failure

    def _where(self) -> str:
        t = self._dut.transport
        if t.tcp:
            return f"{self._endpoint.get('host', t.tcp.host)}:{self._endpoint.get('port', t.tcp.port)}"
        return str(self._endpoint.get("serial_port", t.serial.port if t.serial else "?"))

    def _record(self, op: str, info: dict[str, Any], attempt: int, t_sent: float, t_received: float,
                **result: Any) -> None:
        if self.transcript is not None:
            self.transcript.record(self.name, op=op, unit=self.unit_id, attempt=attempt,
                                   latency_ms=round((t_received - t_sent) * 1000, 3), **info, **result)

    def read_registers(self, table: RegisterTable, address: int, count: int) -> tuple[list[int], float, float]:
        """``count`` registers (or bits, as 0 / 1, of a coil or discrete-input table) from ``address``."""
        fc, method = _READS[table]
        unit = self.unit_id

        def call(client: Any) -> Any:
            return getattr(client, method)(address, count=count, device_id=unit)

        response, t0, t1 = self._exchange("read", call, self._answered(fc, address, count), fc=fc, address=address,
                                          count=count)
        values = [int(bool(b)) for b in response.bits] if table.is_bit else response.registers
        if len(values) < count:
            raise DeviceError(Msg("{device}: asked for {count} {table} values at {address}, got {n_values}",
                                  device=self.name, count=count, table=table.value, address=address,
                                  n_values=len(values)))
        return values[:count], t0, t1

    def _answered(self, fc: int, address: int, count: int) -> Callable[..., None] | None:
        """The transcript's writer of an answered read of these registers (one per request of a plan: a check
        reads the same ones again and again); its lines are those ``_record`` writes. Kept for the first
        ``_FORMS`` requests only: a journal walked entry by entry goes through ``_record``."""
        if self.transcript is None:
            return None
        key = (fc, address, count)
        form = self._forms.get(key)
        if form is None:
            if len(self._forms) >= _FORMS:
                return None
            form = self._forms[key] = self.transcript.form(self.name, [
                ("op", "read"), ("unit", self.unit_id), ("attempt", VARIES), ("latency_ms", VARIES), ("fc", fc),
                ("address", address), ("count", count), ("registers", VARIES)])
        return form

    def write_coil(self, address: int, on: bool, op: str = "write") -> None:
        """FC05 of one coil."""
        self._exchange(op, lambda client: client.write_coil(address, on, device_id=self.unit_id), fc=5,
                       address=address, values=[int(on)])

    def write_registers(self, address: int, values: list[int], op: str = "write", secret: bool = False) -> None:
        """FC16 of ``values`` at ``address``; ``secret``: the transcript keeps the length, not the values."""
        def call(client: Any) -> Any:
            return client.write_registers(address, values, device_id=self.unit_id)

        shown: dict[str, Any] = {"count": len(values), "redacted": True} if secret else {"values": values}
        self._exchange(op, call, fc=16, address=address, **shown)

    # ---- Device API ---------------------------------------------------------------------------
    def _point(self, quantity: str) -> ModbusPoint:
        point = self.map.points.get(quantity) or self.map.settings.get(quantity)
        if point is None:
            raise NotDeclared(Msg("{device}: profile {model} declares no register for {quantity}", device=self.name,
                                  model=self.profile.model, quantity=quantity))
        return point

    def read_many(self, quantities: Sequence[str]) -> dict[str, Reading]:
        key = tuple(quantities)
        plan = self._plans.get(key)
        if plan is None:
            batches = plan_batches([(q, self._point(q)) for q in quantities], self.map.max_registers_per_request)
            plan = [_prepare(batch) for batch in batches]
            self._plans[key] = plan
        out: dict[str, Reading] = {}
        for batch, members, together in plan:
            regs, t0, t1 = self.read_registers(batch.table, batch.address, batch.count)
            if together is not None:
                for (name, _, _, _, unit, floating), (value, res) in zip(members, together(regs), strict=True):
                    out[name] = _reading(name, value, unit, res, t0, t1, floating)
                continue
            for name, start, end, read, unit, floating in members:
                value, res = read(regs[start:end])
                out[name] = Reading(name, value, unit, res, t0, t1, floating)
        return out

    def read_clock(self) -> ClockReading:
        clock, tz = self._clock()
        regs, t0, t1 = self.read_registers(clock.table, clock.address, clock.register_count)
        try:
            value = codec.decode_clock(clock, regs, tz)
        except ValueError as exc:
            raise DeviceError(Msg("{device}: clock registers {regs} hold no valid date-time ({exc})", device=self.name,
                                  regs=regs, exc=exc)) from None
        return ClockReading(value, t0, t1, codec.clock_resolution_s(clock))

    def set_clock(self, when: datetime, *, unlock: bool = True) -> None:
        """Set the clock, unlocking first when the profile protects it (``unlock=False``: send it as it is)."""
        clock, tz = self._clock()
        if clock.table != RegisterTable.HOLDING:
            raise DeviceError(Msg("{device}: the clock is in input registers and cannot be written", device=self.name))
        registers = codec.encode_clock(clock, when, tz)
        self._guarded("clock", lambda: self.write_registers(clock.address, registers), unlock)

    def _clock(self) -> tuple[Any, Any]:
        if self.map.clock is None or self.profile.clock is None:
            raise NotDeclared(Msg("{device}: profile {model} declares no clock ({CLOCK})", device=self.name,
                                  model=self.profile.model, CLOCK=CLOCK))
        return self.map.clock, self.profile.clock.tzinfo

    def write(self, quantity: str, value: float | int, *, unlock: bool = True) -> None:
        """Write a setting, unlocking first when the profile protects settings (``unlock=False``: as it is)."""
        point = self._point(quantity)
        if not point.writable or not point.table.writable:
            raise DeviceError(Msg("{device}: {quantity} is not declared writable", device=self.name, quantity=quantity))
        what: Protected | None = "settings" if quantity in self.map.settings else None
        if point.table == RegisterTable.COIL:
            self._guarded(what, lambda: self.write_coil(point.address, bool(value)), unlock)
            return
        registers = codec.encode_point(point, value)
        self._guarded(what, lambda: self.write_registers(point.address, registers), unlock)

    def force_write(self, quantity: str, value: float | int) -> None:
        """FC16 of ``value`` in the quantity's own encoding at its own address, writable or not and never
        unlocking — what an intruder would send. For an input register that is the holding register of the
        same number (devices with one register space serve both tables from it)."""
        point = self._point(quantity)
        try:
            registers = codec.encode_point(point, value)
        except (struct.error, OverflowError) as exc:
            raise ValueError(f"{value} does not fit {quantity} ({point.type.value}): {exc}") from None
        self.write_registers(point.address, registers, op="forced write")

    # ---- write protection (modbus.write_protection; cl. 66, 78, 94) ----------------------------------
    def _protection(self) -> WriteProtection:
        if self.map.write_protection is None:
            raise NotDeclared(Msg("{device}: profile {model} declares no write protection (modbus.write_protection)",
                                  device=self.name, model=self.profile.model))
        return self.map.write_protection

    def _lab_password(self) -> str:
        cred = self._dut.credentials.get(UNLOCK_ROLE)
        if cred is None or cred.password is None:
            dut = self.name.partition("/")[0]
            raise DeviceError(Msg("{device}: profile {model} declares modbus.write_protection, but the rig gives no "
                                  "password to unlock it (duts.{dut}.credentials.{UNLOCK_ROLE}.password)",
                                  device=self.name, model=self.profile.model, dut=dut, UNLOCK_ROLE=UNLOCK_ROLE))
        return cred.password

    def unlock(self, password: str | None = None) -> None:
        """Write the unlock register: the rig's password (kept out of the transcript), or ``password`` (any, for
        negative checks; recorded as sent). Raises DeviceRefused when the device refuses it."""
        spec = self._protection()
        lab = password is None
        text = self._lab_password() if lab else password
        assert text is not None
        try:
            registers = codec.encode_point(spec.unlock.as_point(), spec.unlock.password_value(text))
        except ValueError as exc:
            whose = f"the rig's password (duts.{self.name.partition('/')[0]}.credentials.{UNLOCK_ROLE})" if lab \
                else f"password {text!r}"
            raise DeviceError(Msg("{device}: {whose} cannot be written to the unlock register: {exc}", device=self.name,
                                  whose=whose, exc=exc)) from None
        self._session_until = None
        self.write_registers(spec.unlock.address, registers, op="unlock", secret=lab)
        if lab:
            self._session_until = time.monotonic() + spec.session_s
            self._may_be_open_until = max(self._may_be_open_until, self._session_until)

    def wrong_password(self) -> str:
        """A password of the declared form that is not the rig's (and tells nothing about it)."""
        cred = self._dut.credentials.get(UNLOCK_ROLE)
        return self._protection().unlock.other_password(cred.password or "" if cred is not None else "")

    def session_closes_in(self) -> float:
        return max(0.0, self._may_be_open_until - time.monotonic())

    def _guarded(self, what: Protected | None, send: Callable[[], None], unlock: bool) -> None:
        """A write the profile may protect: unlocked first (once per session, renewed when less than a request
        timeout of it is left), and unlocked and sent once more when refused on a session the driver only
        believed open (a power cut, device time fast-forwarded). Without protection or with ``unlock=False``
        it is sent as it is."""
        spec = self.map.write_protection
        guarded = spec is not None and what is not None and spec.guards(what)
        if not guarded or not unlock:
            send()
            if guarded:
                self._wrote(spec)
            return
        fresh = self._session_until is None or self._session_until - time.monotonic() <= self.timeout
        if fresh:
            self.unlock()
        try:
            send()
        except DeviceRefused:
            if fresh:
                raise
            self.unlock()
            send()
        self._wrote(spec)

    def _wrote(self, spec: WriteProtection | None) -> None:
        """An accepted write keeps a session open for another ``session_s`` (when one may be open)."""
        now = time.monotonic()
        if spec is None or self._may_be_open_until <= now:
            return
        self._may_be_open_until = now + spec.session_s
        if self._session_until is not None:
            self._session_until = self._may_be_open_until

    def read_journal(self) -> list[JournalEntry]:
        from harness.devices.modbus_journal import read_journal

        return self._read_store(read_journal, self.map.journal, "event journal (modbus.journal)")

    def read_load_profile(self) -> list[IntervalData]:
        from harness.devices.modbus_journal import read_load_profile

        return self._read_store(read_load_profile, self.map.load_profile, "load profile (modbus.load_profile)")

    def _read_store(self, reader: Any, spec: Any, what: str) -> Any:
        """A declared record store (journal, load profile) through its generic layout reader."""
        if spec is None:
            raise NotDeclared(Msg("{device}: profile {model} declares no {what}", device=self.name,
                                  model=self.profile.model, what=what))
        tz = self.profile.clock.tzinfo if self.profile.clock else UTC
        return reader(spec, lambda t, a, n: self.read_registers(t, a, n)[0], self.write_registers, tz,
                      self.map.max_registers_per_request)

    def probe(self) -> None:
        self.read(next(iter(self.map.points)))

    def settings(self) -> list[str]:
        return list(self.map.settings)
