"""SerialLinkRelay on real pty pairs (socat), with a live "DUT" process on the far end of the line: bytes pass
both ways, a cut is silence both ways while that process keeps running, a restore passes frames again (and
none of what was sent during the cut), every fault is logged, and close stops the thread and socat."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.fault_injection.record import FaultLog
from harness.fault_injection.serial_line import PtyPair
from harness.fault_injection.serial_relay import SerialLinkRelay, _open_raw

pytestmark = [pytest.mark.serial,
              pytest.mark.skipif(shutil.which("socat") is None, reason="a pty pair needs socat (Debian package socat)")]

# The far end of the line: echoes each chunk as <chunk> and sends a heartbeat "." every 50 ms, so that silence
# from it is the relay's doing, never its own.
DUT_SCRIPT = r"""
import os, select, sys, termios, time, tty
fd = os.open(sys.argv[1], os.O_RDWR | os.O_NOCTTY)
tty.setraw(fd, termios.TCSANOW)
beat = time.monotonic()
while True:
    ready, _, _ = select.select([fd], [], [], 0.05)
    if ready:
        os.write(fd, b"<" + os.read(fd, 4096) + b">")
    if time.monotonic() - beat >= 0.05:
        os.write(fd, b".")
        beat = time.monotonic()
"""


def _read(fd: int, seconds: float) -> bytes:
    """Everything that arrives on ``fd`` within ``seconds``."""
    out, deadline = b"", time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            out += os.read(fd, 4096)
        except BlockingIOError:
            time.sleep(0.01)
    return out


def _read_until(fd: int, wanted: bytes, seconds: float = 2.0) -> bytes:
    out, deadline = b"", time.monotonic() + seconds
    while wanted not in out and time.monotonic() < deadline:
        out += _read(fd, 0.05)
    return out


@pytest.fixture
def line(tmp_path: Path) -> Iterator[tuple[SerialLinkRelay, int, subprocess.Popen[bytes], Path]]:
    """The DUT process on pair A, the relay in the middle, the test as the harness client on pair B."""
    pair = PtyPair(tmp_path, "a")
    pair.open()
    log = tmp_path / "faults.jsonl"
    relay = SerialLinkRelay(pair.harness_end, tmp_path, name="meter", faults=FaultLog(log), dut="meter").start()
    dut = subprocess.Popen([sys.executable, "-c", DUT_SCRIPT, str(pair.dut_end)], stdin=subprocess.DEVNULL)
    client = _open_raw(relay.client_end)
    try:
        yield relay, client, dut, log
    finally:
        os.close(client)
        dut.terminate()
        dut.wait(timeout=5)
        relay.close()
        pair.close()


def test_bytes_pass_a_cut_is_silence_both_ways_and_restore_passes_frames_again(line):
    relay, client, dut, log = line
    assert b"." in _read_until(client, b".")  # DUT → harness
    os.write(client, b"ping")
    assert b"<ping>" in _read_until(client, b"<ping>")  # harness → DUT → harness

    relay.cut()
    cut_at = relay.last_transition
    assert abs(time.time() - cut_at) < 1.0 and relay.active_faults == ["cut"]
    _read(client, 0.1)  # what was already in the client's tty queue before the cut
    os.write(client, b"lost")
    assert _read(client, 0.5) == b""  # no heartbeat, no echo: silence both ways …
    assert dut.poll() is None  # … while the DUT process is alive and writing

    relay.restore()
    assert relay.last_transition > cut_at and relay.active_faults == []
    os.write(client, b"back")
    heard = _read_until(client, b"<back>")
    assert b"<back>" in heard and b"lost" not in heard, heard  # the frame sent during the cut never arrives
    assert b"." in _read_until(client, b".")
    stats = relay.stats
    assert stats["bytes_dropped"] >= len(b"lost") and stats["bytes_up"] >= len(b"pingback")

    events = [json.loads(x) for x in log.read_text().splitlines()]
    assert [(e["phase"], e.get("what")) for e in events] == [("begin", "cut"), ("end", None)]
    assert events[0]["injector"] == "serial-relay" and events[1]["reason"] == "restore"
    assert events[0]["event"] == events[1]["event"]


def test_blackhole_is_silence_too_and_close_ends_it_logged_and_stops_everything(tmp_path, line):
    relay, client, _, log = line
    relay.blackhole()
    _read(client, 0.1)
    os.write(client, b"ping")
    assert _read(client, 0.4) == b""
    relay.cut()  # replaces the black hole: one end, one begin
    socat = relay.line.proc
    assert relay.running
    relay.close()
    relay.close()  # idempotent
    events = [json.loads(x) for x in log.read_text().splitlines()]
    assert [(e["phase"], e.get("what"), e.get("reason")) for e in events] == [
        ("begin", "blackhole", None), ("end", None, "replaced"), ("begin", "cut", None), ("end", None, "close")]
    assert not relay.running, "relay thread still running after close"
    assert socat is not None and socat.poll() is not None, "the relay's socat still running after close"
    with pytest.raises(RuntimeError, match="not running"):
        relay.cut()
