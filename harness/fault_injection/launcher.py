"""Launch any command line as a simulated DUT, and stop it by its PID.

A rig names the command with placeholders; the harness fills them in, starts the process in a
new session (so its children can be stopped with it), logs its output to the run's evidence,
and waits — bounded — until the DUT answers through the Device API. A vendor's emulator is
launched exactly like our own simulators.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

from harness.config.rig import Launch


def die_with_parent() -> None:
    """In the child before exec: ask Linux to SIGKILL it if the harness dies (even by kill -9),
    so a crashed run never leaves a simulated DUT holding its port."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: the harness's own stop() remains the only guard


class LaunchError(RuntimeError):
    """The DUT process could not be started or never answered."""


class DutProcess:
    def __init__(self, name: str, launch: Launch, placeholders: dict[str, str], log_path: Path) -> None:
        self.name = name
        self.launch = launch
        self.placeholders = placeholders
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self.starts = 0

    def argv(self) -> list[str]:
        values = {"python": sys.executable, **self.placeholders}
        try:
            return [arg.format(**values) for arg in self.launch.command]
        except KeyError as exc:
            raise LaunchError(f"{self.name}: launch command uses unknown placeholder {exc}; known: "
                              f"{', '.join(sorted(values))}") from None

    def start(self) -> None:
        if self.running:
            return
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self._log.write(f"--- start {time.strftime('%Y-%m-%dT%H:%M:%S')} {' '.join(self.argv())}\n".encode())
        self._log.flush()
        env = {**os.environ, **self.launch.env}
        try:
            self.proc = subprocess.Popen(self.argv(), stdout=self._log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=env, start_new_session=True,
                                         preexec_fn=die_with_parent)
        except OSError as exc:
            raise LaunchError(f"{self.name}: cannot start {self.argv()[0]}: {exc.strerror}") from None
        self.starts += 1

    def wait_ready(self, probe: Callable[[], object]) -> float:
        """Call ``probe`` until it succeeds; seconds it took. Bounded by the rig's ready timeout."""
        t0 = time.monotonic()
        deadline = t0 + self.launch.ready_timeout_s
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise LaunchError(f"{self.name}: process exited with code {self.proc.returncode} before "
                                  f"answering; see {self.log_path}")
            try:
                probe()
                return time.monotonic() - t0
            except Exception as exc:  # any failure means: not ready yet
                last = exc
                time.sleep(0.05)
        raise LaunchError(f"{self.name}: no answer within {self.launch.ready_timeout_s:g} s ({last}); "
                          f"see {self.log_path}")

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def kill(self) -> None:
        """Power off: SIGKILL to the process group we created, by PID. Nothing gets to save."""
        self._signal(signal.SIGKILL)

    def stop(self, grace_s: float = 3.0) -> None:
        """Orderly stop at the end of a run: SIGTERM, then SIGKILL after ``grace_s``."""
        if self.running:
            self._signal(signal.SIGTERM)
            try:
                assert self.proc is not None
                self.proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
        self._close_log()

    def _signal(self, sig: signal.Signals) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)  # the group we made with start_new_session: pgid == pid
        if sig == signal.SIGKILL:
            self.proc.wait(timeout=10)

    def _close_log(self) -> None:
        if self._log:
            self._log.close()
            self._log = None
