"""A simulated serial line: a pseudo-terminal pair made by socat, one end for the DUT.

A real pty pair, not a mock: bytes go through the kernel's tty layer, and RTU framing is
exercised exactly as on a USB-RS485 adapter (without baud-rate timing, which a pty does not
emulate). socat keeps the pair up when the simulator at one end is killed and relaunched.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

from harness.fault_injection.launcher import die_with_parent


class PtyPair:
    def __init__(self, directory: Path, name: str) -> None:
        self.dut_end = directory / f"{name}-dut.pty"
        self.harness_end = directory / f"{name}-harness.pty"
        self.proc: subprocess.Popen[bytes] | None = None

    def open(self, timeout_s: float = 5.0) -> None:
        socat = shutil.which("socat")
        if socat is None:
            raise RuntimeError("a simulated serial line needs socat (Debian package socat): apt-get install socat")
        self.dut_end.parent.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [socat, "-d", f"pty,raw,echo=0,link={self.dut_end}", f"pty,raw,echo=0,link={self.harness_end}"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True, preexec_fn=die_with_parent)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.dut_end.exists() and self.harness_end.exists():
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        self.close()
        raise RuntimeError("socat did not create the pseudo-terminal pair")

    def close(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=3)
        self.proc = None
