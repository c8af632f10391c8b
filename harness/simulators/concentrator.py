"""The simulated data concentrator (`harness sim concentrator`): a meter that pushes its load profile.

The embedded meter IS the golden meter (same registers, RTC, journal, load profile and control
channel, so the harness can read it over Modbus as before); on top of it, each interval record the
meter closes (``on_interval_closed``, called once the record is in the meter's NVM) is captured
into a fsynced buffer and pushed upstream over MQTT to a main and a reserve broker (``uplink.py``:
switchover, return, link status). Device time drives it all: the control channel's ``advance`` by
one capture period closes one interval. Seeded defects (``CONCENTRATOR_DEFECTS``) each break one
duty of cl. 83–85; the embedded meter itself has none.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from collections import deque
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from harness.config.profile import Profile
from harness.durable import write_atomically
from harness.simulators.defects import CONCENTRATOR_DEFECTS
from harness.simulators.intervals import IntervalRecord
from harness.simulators.meter import MeterSimulator, parse_load
from harness.simulators.modbus_device import common_parser, run_simulator
from harness.simulators.uplink import Uplink

PROG = "harness sim concentrator"


class RecordBuffer:
    """Interval records awaiting their PUBACK, in NVM: an append-only log, fsynced per line.

    A capture is on disk before it counts as captured; an acknowledgement is on disk before the
    next record goes out, so a power cut (SIGKILL) can cost one duplicate but never a record. The
    log is compacted (temp + fsync + rename) on power-up and whenever it has grown well past its
    content. Full: the oldest record is dropped and counted. ``volatile`` (defect buffer_in_ram)
    keeps the same structure in RAM only.
    """

    FILE = "uplink-buffer.jsonl"

    def __init__(self, state_dir: Path, capacity: int, volatile: bool = False) -> None:
        self.path = state_dir / self.FILE
        self.capacity, self.volatile = capacity, volatile
        self.records: deque[IntervalRecord] = deque()
        self.dropped = 0
        self.last_seq = 0  # the newest seq ever captured: a record is never captured twice
        self._lines = 0
        self._fd: int | None = None
        state_dir.mkdir(parents=True, exist_ok=True)
        if not volatile:
            self._load()
            self._compact()

    def __len__(self) -> int:
        return len(self.records)

    def oldest(self) -> IntervalRecord | None:
        return self.records[0] if self.records else None

    def newest(self) -> IntervalRecord | None:
        return self.records[-1] if self.records else None

    def capture(self, record: IntervalRecord) -> bool:
        """Keep a record the meter closed; False if it was captured before (a replay after power-up)."""
        if record.seq <= self.last_seq:
            return False
        while len(self.records) >= self.capacity:
            gone = self.records.popleft()
            self.dropped += 1
            self._append({"drop": gone.seq})
        self.records.append(record)
        self.last_seq = record.seq
        self._append({"rec": json.loads(record.to_json())})
        return True

    def ack(self, seq: int) -> None:
        """The record's PUBACK came: it leaves the buffer."""
        if self.records and self.records[0].seq == seq:
            self.records.popleft()
        elif self.records and self.records[-1].seq == seq:
            self.records.pop()
        else:
            self.records = deque(r for r in self.records if r.seq != seq)
        self._append({"ack": seq})
        if self._lines > 2 * len(self.records) + 256:
            self._compact()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    # ---- the log ----------------------------------------------------------------------------------
    def _load(self) -> None:
        pending: dict[int, IntervalRecord] = {}
        try:
            lines = self.path.read_bytes().splitlines()
        except FileNotFoundError:
            return
        for line in lines:
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # a line torn by the power cut: its record was never counted as captured
            if "meta" in entry:
                self.dropped, self.last_seq = int(entry["meta"]["dropped"]), int(entry["meta"]["last_seq"])
            elif "rec" in entry:
                record = IntervalRecord.from_json(json.dumps(entry["rec"]))
                pending[record.seq] = record
                self.last_seq = max(self.last_seq, record.seq)
            elif "ack" in entry or "drop" in entry:
                pending.pop(int(entry.get("ack", entry.get("drop"))), None)
                self.dropped += "drop" in entry
        self.records = deque(pending[s] for s in sorted(pending))

    def _compact(self) -> None:
        """Rewrite the log as just its content, atomically, and reopen it for appending."""
        self.close()
        lines = [json.dumps({"meta": {"dropped": self.dropped, "last_seq": self.last_seq}})]
        lines += [json.dumps({"rec": json.loads(r.to_json())}) for r in self.records]
        write_atomically(self.path, ("\n".join(lines) + "\n").encode())
        self._lines = len(lines)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)

    def _append(self, entry: dict[str, Any]) -> None:
        if self.volatile:
            return
        if self._fd is None:  # closed at shutdown, and the meter closed one more interval on its way down
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.write(self._fd, json.dumps(entry, separators=(",", ":")).encode() + b"\n")
        os.fdatasync(self._fd)
        self._lines += 1


def parse_url(text: str) -> tuple[str, int]:
    """``mqtt://HOST:PORT`` -> (host, port)."""
    parts = urlsplit(text)
    if parts.scheme != "mqtt" or not parts.hostname or parts.path not in ("", "/"):
        raise argparse.ArgumentTypeError(f"{text!r} is not an mqtt://HOST:PORT URL")
    try:
        port = parts.port or 1883
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from None
    return parts.hostname, port


class ConcentratorSimulator(MeterSimulator):
    """The golden meter with an MQTT uplink on a main and a reserve channel."""

    def __init__(self, profile: Profile, state_dir: Path, load: dict[str, float], defects: set[str], serial: int,
                 urls: dict[str, tuple[str, int]]) -> None:
        if profile.uplink is None:
            raise ValueError("the concentrator's profile must declare `uplink:` (topics, switchover and return "
                             "times, buffer capacity)")
        # the buffer exists before the meter powers up: a record the meter closes on power-up has a home
        self.buffer = RecordBuffer(state_dir, profile.uplink.buffer_capacity, volatile="buffer_in_ram" in defects)
        self.uplink: Uplink | None = None
        if "pushed_power_cut_unflagged" in defects:  # the embedded meter's flaw, seen through the uplink
            defects = defects | {"interval_power_cut_unflagged"}
        super().__init__(profile, state_dir, load, defects, serial)
        self.uplink = Uplink(profile.uplink, self.serial, urls, self.buffer, defects,
                             device_time=lambda: self.timeline.rtc() - self.utc_offset_s)

    def on_interval_closed(self, record: IntervalRecord) -> None:
        """The meter's hook: the record is in its load profile's NVM; now it goes upstream. After a
        power-up the meter offers its last batch again; the buffer takes each seq once."""
        if self.buffer.capture(record) and self.uplink is not None:
            self.uplink.wake()

    async def control(self, req: dict[str, Any]) -> dict[str, Any]:
        reply = await super().control(req)
        if self.uplink is not None:
            reply["uplink"] = {**self.uplink.status(), "captured_seq": self.buffer.last_seq}
        return reply

    async def tick(self) -> None:
        """The uplink runs beside the meter's own tick, and stops with it."""
        assert self.uplink is not None
        task = asyncio.create_task(self.uplink.run())
        try:
            await super().tick()
        finally:
            task.cancel()
            self.uplink.close()
            self.buffer.close()


def build_parser() -> argparse.ArgumentParser:
    p = common_parser(PROG, __doc__.splitlines()[0], "TEK-SIM-DC1", 85000001)
    p.add_argument("--load", type=parse_load, default=parse_load("3000,500,1200,300"),
                   help="A+ W, A- W, R+ var, R- var of the embedded meter (default 3000,500,1200,300)")
    p.add_argument("--main", type=parse_url, metavar="mqtt://HOST:PORT", help="the main channel's broker")
    p.add_argument("--reserve", type=parse_url, metavar="mqtt://HOST:PORT", help="the reserve channel's broker")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.main is None and not args.list_defects:
        parser.error("--main mqtt://HOST:PORT is required")
    urls = {"main": args.main} if args.reserve is None else {"main": args.main, "reserve": args.reserve}
    return run_simulator(args, PROG, CONCENTRATOR_DEFECTS, "tek-sim-dc1.yaml",
                         lambda profile, defects: ConcentratorSimulator(profile, args.state_dir, args.load, defects,
                                                                        args.serial, urls))
