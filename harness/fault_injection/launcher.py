"""Launch any command line as a simulated DUT, and stop it by its PID.

A rig names the command with placeholders; the harness fills them in, starts the process in a
new session (so its children can be stopped with it), logs its output to the run's evidence,
and waits — bounded — until the DUT answers through the Device API. A vendor's emulator is
launched exactly like our own simulators.

Secrets never go on the command line (``ps`` shows it to every user, and the DUT's log records it):
a launched DUT gets the rig's credentials for it in a file (placeholder ``{credentials_file}``, also in
its environment as ``HARNESS_CREDENTIALS_FILE``) or, in ``launch.env`` values only, as
``{password:ROLE}`` / ``{user:ROLE}``. Its output reaches the log through the same redaction as the
transcript (``harness.redaction``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

from harness.config.rig import Launch
from harness.redaction import Redactor

CREDENTIALS_ENV = "HARNESS_CREDENTIALS_FILE"


class Secrets:
    """``{password:ROLE}`` / ``{user:ROLE}`` in a ``launch.env`` value: the rig's credential for ROLE."""

    def __init__(self, credentials: dict[str, dict[str, str]], field: str) -> None:
        self.credentials, self.field = credentials, field

    def __format__(self, role: str) -> str:
        value = self.credentials.get(role, {}).get(self.field)
        if value is None:
            raise KeyError(f"{self.field}:{role}")
        return value


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
    def __init__(self, name: str, launch: Launch, placeholders: dict[str, str], log_path: Path,
                 redactor: Redactor | None = None, credentials: dict[str, dict[str, str]] | None = None) -> None:
        self.name = name
        self.launch = launch
        self.placeholders = placeholders
        self.log_path = log_path
        self.redactor = redactor or Redactor()
        self.credentials = credentials or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._log_lock = threading.Lock()
        self._pumps: list[threading.Thread] = []
        self.starts = 0

    def argv(self) -> list[str]:
        values = {"python": sys.executable, **self.placeholders}
        try:
            argv = [arg.format(**values) for arg in self.launch.command]
        except (KeyError, ValueError) as exc:
            raise LaunchError(f"{self.name}: launch command uses unknown placeholder {exc}; known: "
                              f"{', '.join(sorted(values))} (secrets: {{credentials_file}}, or {{password:ROLE}} "
                              "in launch.env)") from None
        if any(self.redactor.finds(arg.encode()) for arg in argv):
            raise LaunchError(f"{self.name}: a credential's secret is on the launch command line (visible in ps and "
                              "the DUT's log); pass it through {credentials_file} or launch.env")
        return argv

    def env(self) -> dict[str, str]:
        """The process environment: the harness's, the rig's ``launch.env`` (placeholders and secrets filled)."""
        values = {"python": sys.executable, **self.placeholders,
                  "password": Secrets(self.credentials, "password"), "user": Secrets(self.credentials, "user")}
        extra = {CREDENTIALS_ENV: self.placeholders["credentials_file"]} \
            if self.placeholders.get("credentials_file") else {}
        try:
            extra.update({k: v.format(**values) if "{" in v else v for k, v in self.launch.env.items()})
        except (KeyError, ValueError) as exc:
            raise LaunchError(f"{self.name}: launch.env uses unknown placeholder or role {exc}") from None
        return {**os.environ, **extra}

    def start(self) -> None:
        if self.running:
            return
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        if self._log is None:
            self._log = self.log_path.open("ab")
        argv = self.argv()
        self._write_log(f"--- start {time.strftime('%Y-%m-%dT%H:%M:%S')} {' '.join(argv)}\n".encode())
        try:
            self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=self.env(), start_new_session=True,
                                         preexec_fn=die_with_parent)
        except OSError as exc:
            raise LaunchError(f"{self.name}: cannot start {argv[0]}: {exc.strerror}") from None
        pump = threading.Thread(target=self._pump, args=(self.proc.stdout,), name=f"{self.name}-log", daemon=True)
        pump.start()
        self._pumps = [p for p in self._pumps if p.is_alive()] + [pump]
        self.starts += 1

    def _pump(self, source: IO[bytes] | None) -> None:
        """The DUT's output, line by line, redacted into its log (ends when the process and its group are gone)."""
        if source is None:
            return
        with source:
            for line in iter(source.readline, b""):
                self._write_log(line)

    def _write_log(self, data: bytes) -> None:
        with self._log_lock:
            if self._log is not None:
                self._log.write(self.redactor.data(data))
                self._log.flush()

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
        for pump in self._pumps:
            pump.join(timeout=5.0)  # bounded: a grandchild that kept the pipe open must not hang the run
        self._pumps = []
        with self._log_lock:
            if self._log:
                self._log.close()
                self._log = None
