"""Modbus/TCP servers nobody on this project wrote, as reference peers for the harness's own tests: a server on
stock libmodbus (C, compiled here from tests/peers/libmodbus_server.c) and a plain pymodbus server
(tests/peers/pymodbus_server.py). Each runs as a process of its own on a free loopback port, is waited for
until it says "ready" (bounded), and is stopped by its PID."""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from harness.fault_injection.ports import free_port

PEERS = Path(__file__).resolve().parent / "peers"
DATA = Path(__file__).resolve().parent / "data"
READY_TIMEOUT_S = 10.0


def compile_libmodbus_server(out_dir: Path) -> tuple[Path | None, str]:
    """Build the libmodbus peer into ``out_dir``: (binary, "") or (None, why it cannot be built here)."""
    compiler = shutil.which("gcc") or shutil.which("cc")
    if compiler is None:
        return None, "no C compiler (setup.sh installs gcc)"
    if not Path("/usr/include/modbus/modbus.h").exists():
        return None, "no libmodbus headers (setup.sh installs Debian's libmodbus-dev)"
    binary = out_dir / "libmodbus_server"
    res = subprocess.run([compiler, "-O2", "-Wall", "-Wextra", "-o", str(binary),
                          str(PEERS / "libmodbus_server.c"), "-I/usr/include/modbus", "-lmodbus"],
                         capture_output=True, text=True, timeout=120)
    if res.returncode != 0:
        raise AssertionError(f"the libmodbus peer does not compile:\n{res.stderr}")
    return binary, ""


@dataclass
class Peer:
    """A running reference server, stopped by PID."""

    proc: subprocess.Popen[bytes]
    port: int

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


def start_peer(command: list[str]) -> Peer:
    """``command`` + a free port; returns once the server printed "ready" (else it is stopped and this fails)."""
    port = free_port()
    proc = subprocess.Popen([*command, str(port)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            stdin=subprocess.DEVNULL)
    peer = Peer(proc, port)
    assert proc.stdout is not None
    deadline, line = time.monotonic() + READY_TIMEOUT_S, b""
    while time.monotonic() < deadline and b"\n" not in line and proc.poll() is None:
        if select.select([proc.stdout], [], [], 0.1)[0]:
            line += os.read(proc.stdout.fileno(), 64)
    if not line.startswith(b"ready"):
        peer.stop()
        raise AssertionError(f"reference peer {command[0]} did not come up: {line!r}, exit {proc.poll()}")
    return peer


def pymodbus_command() -> list[str]:
    return [sys.executable, str(PEERS / "pymodbus_server.py")]


def peer_rig(path: Path, profile: Path, port: int, *, allow_destructive: bool = False) -> Path:
    """A rig with one DUT — the already-running peer at ``port`` — and no launch: the harness only talks to it."""
    rig = {"name": "reference-peer", "allow_destructive": allow_destructive,
           "timing": {"request_timeout_s": 1.0, "retries": 1},
           "duts": {"peer": {"profile": str(profile), "transport": {"tcp": {"host": "127.0.0.1", "port": port}},
                             "unit_id": 1}}}
    path.write_text(yaml.safe_dump(rig, sort_keys=False), encoding="utf-8")
    return path


def read_tables(port: int, blocks: list[tuple[int, int, int]]) -> dict[tuple[int, int], list[int]]:
    """Every (function code, start, count) block read with pymodbus's own client: the device's whole state."""
    from pymodbus.client import ModbusTcpClient

    client = ModbusTcpClient("127.0.0.1", port=port, timeout=2, retries=1)
    assert client.connect(), f"no connection to the peer on port {port}"
    try:
        found: dict[tuple[int, int], list[int]] = {}
        for fc, start, count in blocks:
            read = {1: client.read_coils, 2: client.read_discrete_inputs, 3: client.read_holding_registers,
                    4: client.read_input_registers}[fc]
            response = read(start, count=count, device_id=1)
            assert not response.isError(), f"FC{fc} {start}+{count}: {response}"
            found[fc, start] = [int(v) for v in (response.bits[:count] if fc in (1, 2) else response.registers)]
        return found
    finally:
        client.close()
