"""The golden AMR server (`harness sim amr-server`) started by hand for the tests that need one outside a rig:
a field of meters on simulated meters, its accounts from a credentials file, optionally a database URL; stopped by
its PID."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx

from harness.config import load_profile
from harness.devices.amr.rest import RestAmrServer
from harness.fault_injection.ports import free_port

T = TypeVar("T")


def field_of(sim_port: int, profile: Path, meters: dict[str, str]) -> dict[str, Any]:
    """A provisioning file's content: meter id -> the register (of the meter's profile) the server reads, all on the
    simulated meter at ``sim_port``."""
    points = load_profile(profile).modbus.points
    return {"meters": [{"id": m, "kind": "electricity_meter", "host": "127.0.0.1", "port": sim_port, "unit_id": 1,
                        "quantity": q, "point": points[q].model_dump(mode="json")} for m, q in meters.items()]}


def start(tmp: Path, field: dict[str, Any], port: int, accounts: dict[str, dict[str, str]],
          *extra: str) -> subprocess.Popen[bytes]:
    creds = tmp / "creds.json"
    creds.write_text(json.dumps(accounts), encoding="utf-8")
    creds.chmod(0o600)
    (tmp / "field.json").write_text(json.dumps(field), encoding="utf-8")
    return subprocess.Popen([sys.executable, "-m", "harness", "sim", "amr-server", "--state-dir", str(tmp / "s"),
                             "--http", f"127.0.0.1:{port}", "--field", str(tmp / "field.json"),
                             "--credentials-file", str(creds), "--poll-interval", "0.2", *extra],
                            stdout=subprocess.DEVNULL, stderr=(tmp / "server.log").open("ab"), stdin=subprocess.DEVNULL)


def until(what: Callable[[], T | None], timeout_s: float = 20.0) -> T:
    """``what()``'s first truthy answer, polled every 0.1 s (an exception counts as not yet until the deadline)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            got = what()
            if got:
                return got
        except Exception:
            if time.monotonic() >= deadline:
                raise
        assert time.monotonic() < deadline, f"nothing within {timeout_s} s"
        time.sleep(0.1)


@contextmanager
def golden_server(tmp: Path, field: dict[str, Any], accounts: dict[str, dict[str, str]],
                  *extra: str) -> Iterator[str]:
    """A running golden server; its base URL (``http://127.0.0.1:PORT``). Stopped by its PID."""
    port = free_port("127.0.0.1")
    proc = start(tmp, field, port, accounts, *extra)
    base = f"http://127.0.0.1:{port}"
    try:
        def up() -> bool:
            assert proc.poll() is None, f"the server exited {proc.returncode}: " \
                f"{(tmp / 'server.log').read_text(errors='replace')[-2000:]}"
            return httpx.get(f"{base}/api/v1/health", timeout=1).status_code == 200
        until(up)
        yield base
    finally:
        proc.kill()
        proc.wait(10)


SIGKILL_ACCOUNT = {"admin": {"user": "a", "password": "right-one"}}


def check_readings_survive_sigkill(tmp: Path, field: dict[str, Any], *extra: str,
                                   on_first: Callable[[RestAmrServer], object] = lambda _server: None) -> None:
    """Every reading of meter m1 the API listed before a SIGKILL of the server is there, unchanged, after its relaunch
    on the same storage (each is committed before it is listed). ``on_first`` gets the first run's client."""
    from harness.config import load_rig
    from tests.conftest import ROOT

    port = free_port("127.0.0.1")
    rig = load_rig(ROOT / "rigs" / "sim-amr.yaml")
    server = RestAmrServer("golden", rig.profiles["amr"], None, rig.rig.timing, None, {"host": "127.0.0.1",
                                                                                        "port": port})
    user, password = SIGKILL_ACCOUNT["admin"]["user"], SIGKILL_ACCOUNT["admin"]["password"]
    proc = start(tmp, field, port, SIGKILL_ACCOUNT, *extra)
    try:
        until(lambda: server.probe() or True)
        on_first(server)
        session = server.login(user, password)
        seen = until(lambda: r if len(r := session.readings("m1")) >= 3 else None)
        proc.kill()
        proc.wait(10)
        proc = start(tmp, field, port, SIGKILL_ACCOUNT, *extra)
        until(lambda: server.probe() or True)
        after = {r.reading_id: r for r in server.login(user, password).readings("m1")}
        assert [after.get(r.reading_id) for r in seen] == seen
    finally:
        server.close()
        proc.kill()
        proc.wait(10)
