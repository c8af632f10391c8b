"""The golden AMR server: readings per second it ingests from its field, and the amr suite's wall time.

Why: an AMR server's job is to read its meters; the golden one must keep up with the fastest polling a rig
asks of it, and `harness certify rigs/sim-amr.yaml --suite amr` is what CI and a lab wait for.

How: (1) starts ``--meters`` simulated electricity meters and ``harness sim amr-server`` polling them every
``--interval`` seconds for ``--seconds``; counts the readings the server stored (through its own API) and its
CPU time (/proc). The baseline, measured in the same run against the same meters: one asyncio pymodbus client
reading the same register of every meter back to back for the same time — the ratio says how much of the raw
Modbus rate the server's poll-decode-commit path keeps. (2) runs the amr suite on the built-in rig ``--runs``
times and reports its wall time and each check's duration. Every process started is stopped by its PID.

Run: ``python benchmarks/amr_ingest.py [--meters 4] [--interval 0.05] [--seconds 10] [--runs 1] [--skip-suite]``.
The last line of stdout is the JSON summary.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PROFILE = ROOT / "device_profiles" / "tek-sim-em4.yaml"
RIG = ROOT / "rigs" / "sim-amr.yaml"
QUANTITY = "active_import_total"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {port} after {timeout_s} s")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start(argv: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "harness", *argv], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)


async def raw_rate(ports: list[int], point: dict[str, Any], seconds: float) -> float:
    """Reads per second of one async pymodbus client reading every meter in turn (the baseline)."""
    from pymodbus.client import AsyncModbusTcpClient

    clients = [AsyncModbusTcpClient("127.0.0.1", port=p) for p in ports]
    for c in clients:
        await c.connect()
    count, t_end = 0, time.monotonic() + seconds
    while time.monotonic() < t_end:
        for c in clients:
            await c.read_holding_registers(point["address"], count=4, device_id=1)
            count += 1
    for c in clients:
        c.close()
    return count / seconds


def ingest(meters: int, interval: float, seconds: float, work: Path) -> dict[str, Any]:
    from harness.config import load_profile, load_rig
    from harness.devices.amr.rest import RestAmrServer

    point = load_profile(PROFILE).modbus.points[QUANTITY].model_dump(mode="json")
    ports = [free_port() for _ in range(meters)]
    procs = [start(["sim", "meter", "--profile", str(PROFILE), "--state-dir", str(work / f"m{i}"), "--tcp",
                    f"127.0.0.1:{p}"]) for i, p in enumerate(ports)]
    server = None
    try:
        for p in ports:
            wait_port(p)
        baseline = asyncio.run(raw_rate(ports, point, seconds))
        field = {"meters": [{"id": f"m{i}", "kind": "electricity_meter", "host": "127.0.0.1", "port": p,
                             "unit_id": 1, "quantity": QUANTITY, "point": point} for i, p in enumerate(ports)]}
        (work / "field.json").write_text(json.dumps(field))
        (work / "creds.json").write_text(json.dumps({"admin": {"user": "bench", "password": "bench-amr"}}))
        http = free_port()
        server = start(["sim", "amr-server", "--state-dir", str(work / "amr"), "--http", f"127.0.0.1:{http}",
                        "--field", str(work / "field.json"), "--credentials-file", str(work / "creds.json"),
                        "--poll-interval", str(interval)])
        wait_port(http)
        rig = load_rig(RIG)
        api = RestAmrServer("bench", rig.profiles["amr"], None, rig.rig.timing, None, {"host": "127.0.0.1",
                                                                                        "port": http})
        session = api.login("bench", "bench-amr")
        stored = lambda: sum(len(session.readings(f"m{i}")) for i in range(meters))  # noqa: E731
        n0, cpu0, t0 = stored(), cpu_seconds(server.pid), time.monotonic()
        time.sleep(seconds)
        n1, cpu1, t1 = stored(), cpu_seconds(server.pid), time.monotonic()
        api.close()
        rate = (n1 - n0) / (t1 - t0)
        return {"meters": meters, "interval_s": interval, "asked_readings_per_s": round(meters / interval, 1),
                "ingested_readings_per_s": round(rate, 1), "raw_modbus_reads_per_s": round(baseline, 1),
                "ingest_to_raw_ratio": round(rate / baseline, 3) if baseline else None,
                "server_cpu_ms_per_reading": round(1000 * (cpu1 - cpu0) / max(1, n1 - n0), 3)}
    finally:
        for proc in [*procs, *([server] if server else [])]:
            proc.kill()
            proc.wait(10)


def suite_walltime(runs: int, work: Path) -> dict[str, Any]:
    env = {**os.environ, "HARNESS_NO_ALLURE_REPORT": "1"}
    out: dict[str, Any] = {"runs": []}
    for n in range(runs):
        target = work / f"suite{n}"
        t0 = time.perf_counter()
        res = subprocess.run([sys.executable, "-m", "harness", "certify", str(RIG), "--suite", "amr", "--out",
                              str(target)], capture_output=True, text=True, timeout=600, env=env)
        wall = time.perf_counter() - t0
        checks = [json.loads(line) for line in (target / "checks.jsonl").read_text().splitlines()] \
            if (target / "checks.jsonl").exists() else []
        out["runs"].append({"exit": res.returncode, "wall_s": round(wall, 2),
                            "checks_s": {c["id"]: round(c["finished"] - c["started"], 2) for c in checks}})
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--meters", type=int, default=4)
    p.add_argument("--interval", type=float, default=0.05)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--skip-suite", action="store_true")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="amr-bench-") as tmp:
        summary = {"ingest": ingest(args.meters, args.interval, args.seconds, Path(tmp))}
        print(json.dumps(summary["ingest"], indent=1))
        if not args.skip_suite:
            summary["suite"] = suite_walltime(args.runs, Path(tmp))
            print(json.dumps(summary["suite"], indent=1))
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
