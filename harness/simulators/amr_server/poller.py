"""The server's own Modbus poller: reads each field meter's register every interval and stores the reading.

It uses its own pymodbus client and its own register decoding (``struct``), sharing nothing with the
harness's Modbus driver — the harness's reads are the ground truth this one is judged against. Each
reading is stamped with the time its answer arrived (in the server's clock, ``sim_time.SimClock``) and
committed before anybody can see it. When each meter is read automatically is ``sim_time.PollSchedule``'s.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from harness.simulators.amr_server.sim_time import SimClock
from harness.simulators.amr_server.store import Reading

log = logging.getLogger("amr-server.poller")

_FORMATS = {"u16": ">H", "i16": ">h", "u32": ">I", "i32": ">i", "u64": ">Q", "i64": ">q", "f32": ">f", "f64": ">d"}


@dataclass
class FieldMeter:
    """One meter of the provisioning file: where it is and which register the server reads."""

    id: str
    kind: str
    host: str
    port: int
    unit_id: int
    quantity: str
    table: str
    address: int
    type: str
    word_order: str
    scale: float
    unit: str
    last_ok: float | None = None  # server time (SimClock) of the last answered poll
    last_error: str | None = None  # why the last poll got no answer; None after an answered one
    client: Any = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> FieldMeter:
        point = obj["point"]
        return cls(id=obj["id"], kind=obj["kind"], host=obj["host"], port=int(obj["port"]),
                   unit_id=int(obj.get("unit_id", 1)), quantity=obj["quantity"], table=point.get("table", "holding"),
                   address=int(point["address"]), type=point["type"], word_order=point.get("word_order", "big"),
                   scale=float(point.get("scale", 1.0)), unit=point.get("unit", "1"))

    @property
    def count(self) -> int:
        return struct.calcsize(_FORMATS[self.type]) // 2

    def decode(self, registers: list[int]) -> float:
        words = list(registers) if self.word_order == "big" else list(reversed(registers))
        raw = struct.unpack(_FORMATS[self.type], b"".join(w.to_bytes(2, "big") for w in words))[0]
        return raw * self.scale


class Poller:
    """Reads meters when asked (by the schedule, or a manual request at once) and stores their readings."""

    def __init__(self, meters: list[FieldMeter], engine: Any, interval_s: float, timeout_s: float,
                 defects: set[str], clock: SimClock | None = None) -> None:
        self.meters = {m.id: m for m in meters}
        self.engine = engine
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.defects = defects
        self.clock = clock or SimClock()
        self.polls = 0  # answered polls since start (the benchmark's count)
        self._manual: set[asyncio.Task[object]] = set()  # manual readings under way (kept until done)

    def request_manual(self, meter: FieldMeter) -> None:
        """A manual reading, taken at once in the background (the request is answered before it is done)."""
        task = asyncio.get_running_loop().create_task(self.read(meter, "manual"))
        self._manual.add(task)
        task.add_done_callback(self._manual.discard)

    async def settle(self) -> None:
        """Wait for the manual readings under way (an advance of time comes after them)."""
        if self._manual:
            await asyncio.gather(*self._manual, return_exceptions=True)

    async def read(self, meter: FieldMeter, source: str, store: bool = True,
                   stamp: float | None = None) -> Reading | None:
        """Read one meter now and (unless the caller stores it with others) store the reading; None when the
        meter did not answer. ``stamp``: a time to stamp it with instead of its answer's (a defect's)."""
        from pymodbus.client import AsyncModbusTcpClient

        async with meter.lock:
            try:
                if meter.client is None or not meter.client.connected:
                    if meter.client is not None:
                        meter.client.close()
                    meter.client = AsyncModbusTcpClient(meter.host, port=meter.port, timeout=self.timeout_s,
                                                        retries=0)
                    await asyncio.wait_for(meter.client.connect(), self.timeout_s)
                    if not meter.client.connected:
                        raise ConnectionError("not connected")
                client = meter.client
                fn = client.read_input_registers if meter.table == "input" else client.read_holding_registers
                answer = await asyncio.wait_for(fn(meter.address, count=meter.count, device_id=meter.unit_id),
                                                self.timeout_s * 2)
                if answer.isError():
                    raise ConnectionError(f"exception {answer}")
                value = meter.decode(answer.registers)
            except Exception as exc:  # a dead meter is a status, not a crash
                log.info("meter %s: no reading (%s)", meter.id, exc)
                meter.last_error = f"{type(exc).__name__}: {exc}"[:200]
                if meter.client is not None:
                    meter.client.close()
                    meter.client = None
                return None
            answered = self.clock.now()  # when the answer arrived
        meter.last_ok, meter.last_error = answered, None
        if "reading_scaled_wrong" in self.defects:
            value = value / 1000.0
        reading = Reading(meter_id=meter.id, quantity=meter.quantity, value=value, unit=meter.unit,
                          reading_time=self.clock.iso(answered if stamp is None else stamp), source=source)
        if store:
            self.store([reading])
        return reading

    def store(self, readings: list[Reading]) -> None:
        """Commit readings together; none is listed by the API before its commit has reached the disk."""
        if not readings:
            return
        with Session(self.engine, expire_on_commit=False) as session:
            session.add_all(readings)
            session.commit()
        self.polls += len(readings)

    def active(self, meter: FieldMeter, inactive_after_s: float) -> bool:
        if "status_never_inactive" in self.defects:
            return True
        return meter.last_ok is not None and self.clock.now() - meter.last_ok <= inactive_after_s

    def communication(self, meter: FieldMeter) -> dict[str, object]:
        """Diagnostics of the link to one meter: a fault from the first unanswered poll until the next answer."""
        if "diagnostics_silent" in self.defects or meter.last_error is None:
            return {"status": "ok", "last_error": None}
        return {"status": "fault", "last_error": meter.last_error}

    def last_reading_time(self, meter_id: str) -> str | None:
        from sqlalchemy import func, select

        with Session(self.engine) as session:
            return session.scalar(select(func.max(Reading.reading_time)).where(Reading.meter_id == meter_id))
