"""Link faults on a simulated serial line: a relay between two pseudo-terminal pairs.

Why: cl. 73 (recovery after link faults) needs the bench to break the line a serial DUT hangs on, as
``LinkProxy`` breaks a TCP connection. A serial line has no connections and no RST, so the fault a real
bench makes is a pulled RS-485 cable: silence. The line becomes

    DUT ↔ pty pair A (the rig's ``port: pty``) ↔ this relay ↔ pty pair B ↔ harness clients

The relay (a thread of the harness process) holds pair A's harness end and pair B's DUT end and copies
bytes both ways; every client of the line (the driver, the robustness campaign, ``harness replay``)
opens pair B's harness end, ``client_end``, instead of pair A's.

Semantics (and why):

* ``cut``: nothing passes either way until ``restore``; what arrives meanwhile is read and dropped, and
  bytes already read but not yet written are dropped too (a cable cut loses what was on the wire).
* ``blackhole``: the same on a serial line — there is no connection state whose difference a peer could
  see (on TCP a black hole keeps connections open; on a line both are silence). Logged as its own kind.
* ``restore``: whatever arrived during the fault and is still queued is dropped first, so both ends next
  see a frame that starts after the restore (a clean frame boundary; a receiver's t3.5 disposes of any
  half frame it was holding when the cut began).
* Every fault is one FaultLog ``begin`` and one ``end`` (``restore``, replaced by the other kind, or
  ``close``), and ``last_transition`` is stamped when the fault took effect — the same interface the
  availability schedule and other callers use on ``LinkProxy``.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import select
import termios
import threading
import time
import tty
from contextlib import AbstractContextManager
from pathlib import Path

from harness.fault_injection.fault_window import fault_window
from harness.fault_injection.record import FaultLog
from harness.fault_injection.serial_line import PtyPair

log = logging.getLogger(__name__)

LINK_STATES = ("cut", "blackhole")
POLL_S = 0.2  # the relay thread's longest sleep; close() wakes it at once through a pipe
JOIN_S = 5.0  # bound on waiting for the relay thread to stop
CHUNK = 4096
STAT_KEYS = ("bytes_up", "bytes_down", "chunks_up", "chunks_down", "bytes_dropped")


class SerialLinkRelay:
    """A byte relay in the middle of a simulated serial line whose link can be cut or black-holed."""

    def __init__(self, dut_side: Path, directory: Path, *, name: str, faults: FaultLog | None = None,
                 dut: str = "") -> None:
        self.dut_side = Path(dut_side)  # pair A's harness end: the DUT's bytes arrive here
        self.line = PtyPair(directory, f"{name}-relay")  # pair B: its DUT end is the relay's
        self.client_end = self.line.harness_end  # … and its harness end every client's
        self.name = name
        self.dut = dut
        self.faults = faults if faults is not None else FaultLog(None)
        self.last_transition: float = 0.0
        self.error: str | None = None
        self._stats: dict[str, int] = dict.fromkeys(STAT_KEYS, 0)
        self._mode = "up"
        self._event: tuple[str, int] | None = None  # the fault in effect and its FaultLog event
        self._fds: dict[str, int] = {}  # "dut" (pair A) and "client" (pair B)
        self._pending: dict[str, bytearray] = {"dut": bytearray(), "client": bytearray()}  # to write to each
        self._wake: tuple[int, int] | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()  # held while a chunk is moved and while the mode changes

    # ---- lifecycle ----------------------------------------------------------------------------
    def start(self) -> SerialLinkRelay:
        """Open pair B and both inner ends, then relay from a daemon thread."""
        if self._thread is not None:
            raise RuntimeError(f"serial link relay {self.name} already started")
        self.line.open()
        try:
            self._fds = {"dut": _open_raw(self.dut_side), "client": _open_raw(self.line.dut_end)}
            self._wake = os.pipe()
        except OSError:
            self.close()
            raise
        self._thread = threading.Thread(target=self._run, name=f"serial-relay-{self.name}", daemon=True)
        self._thread.start()
        self.last_transition = time.time()
        return self

    def close(self) -> None:
        """End the fault in effect (logged), stop and join the thread, close the fds and pair B. Idempotent."""
        with self._lock:
            self._end("close")
        self._stop.set()
        if self._wake is not None:
            with contextlib.suppress(OSError):
                os.write(self._wake[1], b"x")
        if self._thread is not None:
            self._thread.join(JOIN_S)
            if self._thread.is_alive():
                log.warning("serial link relay %s: thread did not stop within %g s", self.name, JOIN_S)
        for fd in [*self._fds.values(), *(self._wake or ())]:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds, self._wake = {}, None
        self.line.close()

    def stop(self) -> None:
        self.close()

    def __enter__(self) -> SerialLinkRelay:
        return self if self._thread is not None else self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # ---- faults (test thread) -----------------------------------------------------------------
    def cut(self) -> None:
        """Silence both ways until ``restore`` (a pulled cable)."""
        self._apply("cut")

    def blackhole(self) -> None:
        """Silence both ways until ``restore``: on a line the same as a cut, logged as a black hole."""
        self._apply("blackhole")

    def restore(self) -> None:
        """Drop what queued up during the fault, then pass bytes again."""
        self._check_running()
        with self._lock:
            if self._mode != "up":
                for side, fd in self._fds.items():
                    self._stats["bytes_dropped"] += _drain(fd)
                    self._pending[side].clear()
                self._mode = "up"
                self.last_transition = time.time()
            self._end("restore")

    def fault(self, kind: str) -> AbstractContextManager[SerialLinkRelay]:
        """``with relay.fault("cut"): ...`` — applied, yielded, always restored."""
        return fault_window(self, kind, LINK_STATES, "serial link fault")

    @property
    def active_faults(self) -> list[str]:
        return [self._event[0]] if self._event else []

    @property
    def stats(self) -> dict[str, int]:
        with self._lock:
            return dict(self._stats)

    def _apply(self, kind: str) -> None:
        self._check_running()
        with self._lock:  # the relay thread moves no chunk meanwhile: from here on nothing passes
            self._end("replaced", replaced_by=kind)
            for side in self._pending:
                self._stats["bytes_dropped"] += len(self._pending[side])
                self._pending[side].clear()
            self._mode = kind
            self.last_transition = time.time()
            self._event = (kind, self.faults.begin(self.dut, "link", kind, channel=self.name,
                                                   injector="serial-relay", params={}))

    def _end(self, reason: str, **details: object) -> None:
        """(Lock held.) Log the end of the fault in effect, if any."""
        if self._event is None:
            return
        _, event = self._event
        self._event = None
        self.faults.end(event, reason=reason, stats=dict(self._stats), **details)

    def _check_running(self) -> None:
        if not self.running:
            raise RuntimeError(f"serial link relay {self.name} is not running"
                               + (f": {self.error}" if self.error else " (start() it first)"))

    # ---- the relay thread ---------------------------------------------------------------------
    def _run(self) -> None:
        other = {"dut": "client", "client": "dut"}
        try:
            while not self._stop.is_set():
                assert self._wake is not None
                reads = [*self._fds.values(), self._wake[0]]
                writes = [self._fds[s] for s in self._pending if self._pending[s]]
                readable, writable, _ = select.select(reads, writes, [], POLL_S)
                with self._lock:
                    for side, fd in self._fds.items():
                        if fd in readable:
                            self._take(side, other[side], fd)
                    for side, fd in self._fds.items():
                        if fd in writable or self._pending[side]:
                            self._give(side, fd)
        except Exception as exc:  # reported by the next fault call (the schedule records it), never lost
            self.error = f"{type(exc).__name__}: {exc}"
            log.exception("serial link relay %s stopped", self.name)

    def _take(self, side: str, to: str, fd: int) -> None:
        """(Lock held.) One chunk from ``side``: queued for ``to`` on an up link, dropped on a faulted one."""
        try:
            data = os.read(fd, CHUNK)
        except BlockingIOError:
            return
        except OSError as exc:
            if exc.errno != errno.EIO:  # EIO: no one holds the other end of that pty right now
                raise
            time.sleep(0.01)
            return
        if self._mode != "up":
            self._stats["bytes_dropped"] += len(data)
            return
        self._pending[to] += data
        up = side == "client"
        self._stats["bytes_up" if up else "bytes_down"] += len(data)
        self._stats["chunks_up" if up else "chunks_down"] += 1

    def _give(self, side: str, fd: int) -> None:
        """(Lock held.) As much of ``side``'s queue as its pty takes now."""
        buf = self._pending[side]
        try:
            written = os.write(fd, bytes(buf))
        except BlockingIOError:
            return
        del buf[:written]


def _open_raw(path: Path) -> int:
    """A tty end opened non-blocking, raw (no echo, no line discipline: bytes as they are)."""
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    try:
        tty.setraw(fd, termios.TCSANOW)
    except termios.error:
        os.close(fd)
        raise
    return fd


def _drain(fd: int) -> int:
    """Read and drop what is queued on ``fd`` now (bounded: a tty queue is a few KB); bytes dropped."""
    dropped = 0
    for _ in range(64):
        try:
            data = os.read(fd, CHUNK)
        except (BlockingIOError, OSError):
            break
        if not data:
            break
        dropped += len(data)
    return dropped
