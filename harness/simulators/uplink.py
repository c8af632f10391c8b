"""The concentrator's uplink: main and reserve MQTT channels, switchover, link status, NVM buffer.

Every interval record goes the same way: captured into the non-volatile buffer (fsynced), then
published QoS 1 on the active channel, one in flight at a time, strictly in ``seq`` order, and
removed from the buffer only on its PUBACK. So a power cut loses nothing that was captured, and a
link dying mid-flight costs at most one duplicate (the record in flight). Main is preferred; the
reserve is used while main is down; main is taken back after it has stayed up for a short hold.

The device speaks MQTT 3.1.1 with its own small client (``MqttSession``) rather than a library
client that reconnects on its own: the device must *notice* every failure (refused, reset, a late
CONNACK/PUBACK/PINGRESP) within bounds derived from its declared switchover time, and report it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from harness.config.uplink import Uplink as UplinkSpec
from harness.simulators.intervals import IntervalRecord

RESENT_ON_BACKFILL = 5  # buffer_duplicates: how many acknowledged records a back-fill sends again
SLOW_FACTOR = 3.0  # failover_slow: the switchover takes this many times the declared time
GIVE_UP_AFTER = 3  # uplink_gives_up: link failures after which a channel is never tried again
log = logging.getLogger(__name__)


class RecordBuffer(Protocol):
    """What the uplink needs of the device's record buffer (the concentrator keeps it in NVM)."""

    dropped: int

    def __len__(self) -> int: ...
    def oldest(self) -> IntervalRecord | None: ...
    def newest(self) -> IntervalRecord | None: ...
    def ack(self, seq: int) -> None: ...


class LinkDown(Exception):
    """The link to a broker failed: refused, reset, closed, or an answer did not come in time."""


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        n, byte = divmod(n, 128)
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _utf8(text: str) -> bytes:
    data = text.encode()
    return len(data).to_bytes(2, "big") + data


def _packet(first: int, body: bytes = b"") -> bytes:
    return bytes([first]) + _varint(len(body)) + body


class MqttSession:
    """One MQTT 3.1.1 connection (clean session) to one broker: CONNECT, QoS 1 PUBLISH, PINGREQ."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        self._reader, self._writer = reader, writer
        self._connack: asyncio.Future[int] = loop.create_future()
        self._acks: dict[int, asyncio.Future[int]] = {}
        self._pong: asyncio.Future[int] | None = None
        self._next_id = 0
        self.closed = asyncio.Event()
        self._task = asyncio.create_task(self._read_loop())

    @classmethod
    async def open(cls, host: str, port: int, client_id: str, keepalive_s: int, timeout: float) -> MqttSession:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        except (OSError, TimeoutError) as exc:
            raise LinkDown(f"connect to {host}:{port}: {exc!r}") from None
        session = cls(reader, writer)
        body = _utf8("MQTT") + bytes([4, 0x02]) + keepalive_s.to_bytes(2, "big") + _utf8(client_id)
        try:
            session._send(_packet(0x10, body))
            code = await session._wait(session._connack, timeout, "CONNACK")
            if code != 0:
                raise LinkDown(f"CONNACK refused the connection (return code {code})")
        except LinkDown:
            session.close()
            raise
        return session

    async def publish(self, topic: str, payload: bytes, retain: bool, timeout: float) -> float:
        """PUBLISH at QoS 1 and wait for its PUBACK; the round trip in seconds."""
        self._next_id = self._next_id % 65535 + 1
        pid = self._next_id
        self._acks[pid] = fut = asyncio.get_running_loop().create_future()
        t0 = time.monotonic()
        self._send(_packet(0x32 | int(retain), _utf8(topic) + pid.to_bytes(2, "big") + payload))
        try:
            await self._wait(fut, timeout, "PUBACK")
        finally:
            self._acks.pop(pid, None)
        return time.monotonic() - t0

    async def ping(self, timeout: float) -> float:
        self._pong = asyncio.get_running_loop().create_future()
        t0 = time.monotonic()
        self._send(_packet(0xC0))
        await self._wait(self._pong, timeout, "PINGRESP")
        return time.monotonic() - t0

    def close(self, graceful: bool = False) -> None:
        if not self.closed.is_set():
            if graceful and not self._writer.is_closing():
                self._writer.write(_packet(0xE0))  # DISCONNECT: an orderly goodbye, no will, no error
                self._writer.close()
            else:
                self._writer.transport.abort()
        self.closed.set()

    def _send(self, data: bytes) -> None:
        if self.closed.is_set() or self._writer.is_closing():
            raise LinkDown("the connection is closed")
        self._writer.write(data)

    async def _wait(self, fut: asyncio.Future[int], timeout: float, what: str) -> int:
        try:
            return await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            raise LinkDown(f"no {what} within {timeout:.2f} s") from None

    async def _read_loop(self) -> None:
        reason: str = "closed by the broker"
        try:
            while True:
                head = (await self._reader.readexactly(1))[0]
                length, shift = 0, 0
                for _ in range(4):
                    byte = (await self._reader.readexactly(1))[0]
                    length |= (byte & 0x7F) << shift
                    shift += 7
                    if not byte & 0x80:
                        break
                body = await self._reader.readexactly(length) if length else b""
                kind = head >> 4
                if kind == 2 and len(body) >= 2:  # CONNACK
                    _resolve(self._connack, body[1])
                elif kind == 4 and len(body) >= 2:  # PUBACK
                    ack = self._acks.get(int.from_bytes(body[:2], "big"))
                    if ack is not None:
                        _resolve(ack, 0)
                elif kind == 13 and self._pong is not None:  # PINGRESP
                    _resolve(self._pong, 0)
        except (OSError, asyncio.IncompleteReadError) as exc:
            reason = f"connection lost: {type(exc).__name__}"
        finally:
            self.closed.set()
            for fut in [self._connack, self._pong, *self._acks.values()]:
                if fut is not None and not fut.done():
                    fut.set_exception(LinkDown(reason))
            self._writer.transport.abort()


def _report_death(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("%s stopped: %r", task.get_name(), task.exception())


def _resolve(fut: asyncio.Future[int], value: int) -> None:
    if not fut.done():
        fut.set_result(value)


@dataclass(frozen=True)
class Timing:
    """Every bound of the uplink, derived from what the profile declares."""

    ack_timeout_s: float  # CONNACK / PUBACK / PINGRESP later than this: the link is down
    ping_s: float  # an up channel is pinged this often, with or without traffic
    keepalive_s: int  # the MQTT keepalive sent in CONNECT (the broker's own dead-client bound)
    probe_s: float  # a down channel is retried after this, growing to probe_max_s
    probe_max_s: float
    hold_s: float  # main must stay up this long before the device leaves the reserve for it

    @classmethod
    def from_spec(cls, spec: UplinkSpec) -> Timing:
        """Detection ≤ ping + ack ≈ 0.53 × switchover_s; return ≤ probe_max + ack + hold ≈ 0.5 × return_s."""
        ack = min(max(spec.switchover_s / 3, 0.2), 10.0)
        ping = min(max(spec.switchover_s / 5, 0.2), 5.0)
        probe = min(1.0, spec.return_s / 10)
        return cls(ack_timeout_s=ack, ping_s=ping, keepalive_s=max(2, math.ceil(3 * ping + ack)), probe_s=probe,
                   probe_max_s=max(probe, min(3.0, spec.return_s / 5)), hold_s=min(3.0, spec.return_s / 5))


class Channel:
    """One upstream channel. Its supervisor keeps a session to the broker: probing with bounded
    backoff while the link is down, pinging while it is up (so a black-holed idle link is noticed)."""

    def __init__(self, name: str, host: str, port: int, client_id: str, timing: Timing,
                 on_change: Callable[[Channel], None], give_up_after: int | None = None) -> None:
        self.name, self.host, self.port, self.client_id = name, host, port, client_id
        self.timing = timing
        self.on_change = on_change
        self.up = False
        self.since = time.time()
        self.up_mono = 0.0
        self.failures = 0
        self.rtt_ms: float | None = None
        self.probing = True  # failover_never_returns switches main's probing off
        self.tried = False  # a first connection attempt has ended, one way or the other
        self.session: MqttSession | None = None
        self.give_up_after = give_up_after  # uplink_gives_up; None: never

    async def run(self) -> None:
        delay = self.timing.probe_s
        while True:
            if not self.probing:
                await asyncio.sleep(self.timing.probe_s)
                continue
            try:
                session = await MqttSession.open(self.host, self.port, self.client_id, self.timing.keepalive_s,
                                                 self.timing.ack_timeout_s)
            except (LinkDown, OSError):
                self._tried()
                await asyncio.sleep(delay)
                delay = min(delay * 1.5, self.timing.probe_max_s)
                continue
            delay = self.timing.probe_s
            self.session = session
            self.tried = True
            self._set(True)
            try:
                while not session.closed.is_set():
                    try:
                        await asyncio.wait_for(session.closed.wait(), self.timing.ping_s)
                    except TimeoutError:
                        await session.ping(self.timing.ack_timeout_s)
            except (LinkDown, OSError):
                pass
            self.fail()
            await asyncio.sleep(self.timing.probe_s)

    def _tried(self) -> None:
        if not self.tried:
            self.tried = True
            self.on_change(self)

    def fail(self, session: MqttSession | None = None) -> None:
        """The link is gone (seen by the supervisor or by a publish that got no PUBACK). Given the
        session that failed, a newer session the supervisor has opened since is left alone."""
        if session is not None and session is not self.session:
            return
        if self.session is not None:
            self.session.close()
            self.session = None
        if self.up:
            self._set(False)

    def _set(self, up: bool) -> None:
        self.up, self.since = up, time.time()
        if up:
            self.up_mono = time.monotonic()
        else:
            self.failures += 1
            if self.give_up_after is not None and self.failures >= self.give_up_after:
                self.probing = False  # the defect: a channel that failed often enough is abandoned for good
        self.on_change(self)

    def view(self) -> dict[str, Any]:
        return {"up": self.up, "since": round(self.since, 3), "failures": self.failures,
                "rtt_ms": None if self.rtt_ms is None else round(self.rtt_ms, 2)}


class Uplink:
    """Chooses the active channel and pushes status and buffered records on it, in order."""

    def __init__(self, spec: UplinkSpec, serial: int, urls: dict[str, tuple[str, int]], buffer: RecordBuffer,
                 defects: set[str], device_time: Callable[[], float]) -> None:
        self.spec, self.buffer, self.defects, self.device_time = spec, buffer, defects, device_time
        self.timing = Timing.from_spec(spec)
        self.interval_topic = spec.topic(serial, "interval")
        self.status_topic = spec.topic(serial, "status")
        give_up = GIVE_UP_AFTER if "uplink_gives_up" in defects else None
        self.channels = {name: Channel(name, host, port, f"tek-dc-{serial}-{name}", self.timing, self._changed,
                                       give_up_after=give_up)
                         for name, (host, port) in urls.items()}
        self.active: str | None = None
        self._wake = asyncio.Event()
        self._status_due = True
        self._last_status = -math.inf
        self._main_lost = -math.inf  # monotonic time main last went down (failover_slow)
        self._resend: list[IntervalRecord] = []  # buffer_duplicates: acknowledged records sent again
        self._skip_next = False  # failover_skips_record: the first record after a switchover is dropped
        self._acked: deque[IntervalRecord] = deque(maxlen=RESENT_ON_BACKFILL)
        self._tasks: list[asyncio.Task[None]] = []
        self._started_wall = time.time()

    # ---- what the device and its control channel see ------------------------------------------------
    def wake(self) -> None:
        """A record was captured: send it if a channel is up."""
        self._wake.set()

    def status(self) -> dict[str, Any]:
        """The link status as published (and as the control channel's ``status`` op shows it)."""
        channels = {name: ch.view() for name, ch in self.channels.items()}
        if "status_not_reported" in self.defects and "main" in channels:
            channels["main"].update(up=True, failures=0, since=round(self._started_wall, 3))
        return {"time": round(self.device_time(), 3), "active": self.active or "none",
                "buffered": len(self.buffer), "dropped": self.buffer.dropped, "channels": channels}

    # ---- running ------------------------------------------------------------------------------------
    async def run(self) -> None:
        self._tasks = [asyncio.create_task(ch.run(), name=f"uplink-{name}") for name, ch in self.channels.items()]
        for task in self._tasks:
            task.add_done_callback(_report_death)
        try:
            await self._sender()
        except Exception:  # a device whose uplink died must say so in its log, not fall silent
            log.exception("the uplink stopped")
            raise
        finally:
            self.close()

    def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for ch in self.channels.values():
            if ch.session is not None:
                ch.session.close(graceful=True)

    def _changed(self, ch: Channel) -> None:
        if ch.name == "main" and not ch.up:
            self._main_lost = time.monotonic()
        self._status_due = True
        self._wake.set()

    def _choose(self) -> str | None:
        main, reserve = self.channels.get("main"), self.channels.get("reserve")
        now = time.monotonic()
        if main is not None and main.up and (self.active != "reserve" or now - main.up_mono >= self.timing.hold_s):
            return "main"
        if main is not None and not main.tried:
            return None  # power-up: main gets its first attempt (bounded by the CONNACK timeout) before the reserve
        if reserve is not None and reserve.up and "failover_never_switches" not in self.defects:
            if "failover_slow" in self.defects and now < self._main_lost + SLOW_FACTOR * self.spec.switchover_s:
                return None  # the defect: the reserve is there, the device just does not move yet
            return "reserve"
        return "main" if main is not None and main.up else None

    def _activate(self, name: str | None) -> None:
        if "failover_skips_record" in self.defects and self.active == "main" and name != "main":
            self._skip_next = True
        self.active = name
        self._status_due = True  # the first thing published on a channel that comes back is the status
        if name is not None and "buffer_duplicates" in self.defects:
            self._resend = list(self._acked)
        if "failover_never_returns" in self.defects and "main" in self.channels:
            self.channels["main"].probing = name != "reserve"
            if name == "reserve":
                self.channels["main"].fail()

    def _next_record(self) -> IntervalRecord | None:
        if self._resend:
            return self._resend[0]
        if self._skip_next and self.active is not None and (lost := self.buffer.oldest()) is not None:
            self._skip_next = False
            self.buffer.ack(lost.seq)  # the defect: dropped as if delivered
        return self.buffer.newest() if "backfill_out_of_order" in self.defects else self.buffer.oldest()

    async def _sender(self) -> None:
        """One record in flight at a time; every wait bounded by the status interval."""
        while True:
            self._wake.clear()
            choice = self._choose()
            if choice != self.active:
                self._activate(choice)
            ch = self.channels[choice] if choice else None
            session = ch.session if ch is not None else None
            if ch is None or session is None:
                await self._sleep(0.5)
                continue
            try:
                if self._status_due or time.monotonic() - self._last_status >= self.spec.status_interval_s:
                    self._status_due = False
                    await self._publish(ch, session, self.status_topic, json.dumps(self.status()), retain=True)
                    self._last_status = time.monotonic()
                    continue
                record = self._next_record()
                if record is None:
                    await self._sleep(self._last_status + self.spec.status_interval_s - time.monotonic())
                    continue
                await self._publish(ch, session, self.interval_topic, record.to_json(), retain=False)
                if self._resend and record is self._resend[0]:
                    self._resend.pop(0)
                else:
                    self.buffer.ack(record.seq)
                    self._acked.append(record)
            except (LinkDown, OSError):
                ch.fail(session)

    async def _publish(self, ch: Channel, session: MqttSession, topic: str, payload: str, retain: bool) -> None:
        rtt = await session.publish(topic, payload.encode(), retain, self.timing.ack_timeout_s)
        ch.rtt_ms = rtt * 1000.0

    async def _sleep(self, seconds: float) -> None:
        """Until woken (a capture, a channel change), at most ``seconds`` and never over 0.5 s, so
        that a hold expiring or a status falling due is seen in time."""
        if seconds <= 0:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), min(seconds, 0.5))
