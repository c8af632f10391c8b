"""How much does the Device API cost over a bare pymodbus client? Read throughput on loopback.

Why: every check reads through ``ModbusDevice`` (timeouts, retries, reconnects, transcript, codec).
That layer must not be what limits a run: the target is Device API ≥ 0.8 × raw pymodbus.

How: one simulated meter (``harness sim meter``) is started as a subprocess on a free loopback port
with a throw-away state directory, and stopped by its PID at the end. Three clients then read all
20 energy registers of the built-in profile, in alternating rounds of a few seconds each so that
drift of the machine or of the simulator hits all of them alike:

* ``raw``        pymodbus ``ModbusTcpClient`` issuing exactly the requests the driver issues
                 (the same address/count batches, from ``plan_batches``), checking ``isError()``;
* ``api``        ``ModbusDevice.read_many(names)``, no transcript (over TCP the driver frames Modbus itself,
                 ``harness/devices/tcp_client.py``; the same requests on the wire);
* ``api+tx``     the same with a ``Transcript`` written to a temporary file.

"requests/s" counts Modbus requests, "reads/s" counts complete reads of the 20 registers (one
``read_many`` call, or one pass over the batches for ``raw``). Figures are the median over rounds.
"CPU µs/read" is this process's CPU time per read: the client-side cost alone, much steadier than
throughput on a small machine where the simulator's cost (and its fsyncs) dominates; its ratio to raw
(median per client, and paired within each round) is the figure of issue 18 (api+tx ≤ 1.3 × raw).
The simulator sits on the same machine, so its own cost is in every figure and the ratio is the
end-to-end slowdown a check sees, not the client overhead alone.

Run: ``python benchmarks/read_throughput.py [--rounds 5] [--seconds 2] [--json FILE]``.
The last line of stdout is the JSON summary.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pymodbus.client import ModbusTcpClient

from harness.config import load_rig
from harness.config.modbus_map import ModbusMap, RegisterTable
from harness.devices.modbus import ModbusDevice, plan_batches
from harness.devices.transcript import Transcript
from harness.fault_injection.ports import free_port
from harness.quantities import energy_registers
from harness.resources import builtin_rig

HOST = "127.0.0.1"
DUT = "meter"
TARGET_RATIO = 0.8
TARGET_CPU_RATIO = 1.3  # issue 18: the client's own CPU per read, api+tx / raw, at most this


def start_simulator(profile: Path, state_dir: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "harness", "sim", "meter", "--profile", str(profile),
            "--state-dir", str(state_dir), "--tcp", f"{HOST}:{port}"]
    with log.open("wb") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def wait_listening(proc: subprocess.Popen[bytes], port: int, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"simulator exited with code {proc.returncode} before listening")
        try:
            with socket.create_connection((HOST, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"simulator not listening on {HOST}:{port} after {timeout_s:g} s")


def stop_simulator(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM (orderly save), then SIGKILL; always this PID, never by name."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@contextlib.contextmanager
def simulated_meter(profile: Path, prefix: str) -> Iterator[tuple[Path, int]]:
    """A simulated meter on a free loopback port with its state in a temporary directory: (that directory,
    the port). Stopped by its PID on the way out, whatever happened."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp_name:
        tmp = Path(tmp_name)
        port = free_port(HOST)
        proc = start_simulator(profile, tmp / "state", port, tmp / "sim.log")
        try:
            wait_listening(proc, port)
            yield tmp, port
        finally:
            stop_simulator(proc)


def request_plan(modbus: ModbusMap, names: list[str]) -> list[tuple[int, int, int]]:
    """(function code, address, count) of the requests the driver makes to read ``names`` together."""
    plan = plan_batches([(n, modbus.points[n]) for n in names], modbus.max_registers_per_request)
    return [(4 if b.table == RegisterTable.INPUT else 3, b.address, b.count) for b in plan]


def interleaved(measurers: dict[str, Callable[[float], tuple[int, float, float]]], rounds: int,
                seconds: float) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Rounds of ``seconds`` per measurer, who goes first rotating (the machine is noisy): per measurer the
    rate of each round and its CPU µs per unit."""
    rates: dict[str, list[float]] = {m: [] for m in measurers}
    cpu_us: dict[str, list[float]] = {m: [] for m in measurers}
    order = list(measurers)
    for r in range(rounds):
        for mode in order[r % len(order):] + order[:r % len(order)]:
            done, elapsed, cpu = measurers[mode](seconds)
            rates[mode].append(done / elapsed)
            cpu_us[mode].append(cpu / done * 1e6)
    return rates, cpu_us


def raw_reader(client: ModbusTcpClient, batches: list[tuple[int, int, int]], unit: int) -> Callable[[], None]:
    def read_all() -> None:
        for fc, address, count in batches:
            reader = client.read_input_registers if fc == 4 else client.read_holding_registers
            response = reader(address, count=count, device_id=unit)
            if response.isError() or len(response.registers) < count:
                raise RuntimeError(f"raw read fc{fc} {address}+{count} failed: {response}")
    return read_all


def api_reader(device: ModbusDevice, names: list[str]) -> Callable[[], None]:
    def read_all() -> None:
        device.read_many(names)
    return read_all


def measure(read_all: Callable[[], None], seconds: float) -> tuple[int, float, float]:
    """Complete reads done in about ``seconds`` of wall time, the wall time and our CPU time they took."""
    done, t0, cpu0 = 0, time.perf_counter(), time.process_time()
    deadline = t0 + seconds
    while True:
        read_all()
        done += 1
        now = time.perf_counter()
        if now >= deadline:
            return done, now - t0, time.process_time() - cpu0


def rounds_args(doc: str, argv: list[str] | None, per: str = "client") -> argparse.Namespace:
    """The options every rounds-based benchmark takes (--rounds, --seconds, --json), checked."""
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5, help=f"rounds per {per} (default 5)")
    p.add_argument("--seconds", type=float, default=2.0, help="seconds per round (default 2)")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write the summary here")
    args = p.parse_args(argv)
    if not (1 <= args.rounds <= 50 and 0.1 <= args.seconds <= 30):
        p.error("--rounds must be 1..50 and --seconds 0.1..30")
    return args


def rate_summary(name: str, args: argparse.Namespace, rates: dict[str, list[float]],
                 cpu_us: dict[str, list[float]], ratio: tuple[str, str], unit: str = "GET") -> dict[str, Any]:
    """Median rate and client CPU per operation of each mode, printed a line each, and the ``ratio`` (mode over
    baseline mode) of both — the figures the DLMS benchmarks report beside their baseline from the same run."""
    op = unit.lower() + "s"
    summary: dict[str, Any] = {"benchmark": name, "rounds": args.rounds, "seconds": args.seconds,
                               "cpus": os.cpu_count(),
                               **{f"{m}_{op}_per_s": round(statistics.median(r), 1) for m, r in rates.items()},
                               **{f"{m}_cpu_us_per_{unit.lower()}": round(statistics.median(c), 1)
                                  for m, c in cpu_us.items()}}
    top, base = ratio
    summary[f"{top}_over_{base}_rate"] = round(summary[f"{top}_{op}_per_s"] / summary[f"{base}_{op}_per_s"], 3)
    summary[f"{top}_over_{base}_cpu"] = round(summary[f"{top}_cpu_us_per_{unit.lower()}"]
                                              / summary[f"{base}_cpu_us_per_{unit.lower()}"], 3)
    for mode in rates:
        print(f"{mode:4}  {summary[f'{mode}_{op}_per_s']:8.1f} {unit}/s  "
              f"{summary[f'{mode}_cpu_us_per_{unit.lower()}']:8.1f} µs CPU/{unit}")
    return summary


def emit(summary: dict, json_path: Path | None) -> int:
    """The summary as one JSON line on stdout (and in ``json_path``): what a script comparing runs reads."""
    line = json.dumps(summary, separators=(",", ":"))
    if json_path:
        json_path.write_text(line + "\n", encoding="utf-8")
    print(line)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = rounds_args(__doc__, argv)

    loaded = load_rig(builtin_rig())
    spec, profile, timing = loaded.dut(DUT), loaded.profiles[DUT], loaded.rig.timing
    assert profile.modbus is not None and profile.tariffs is not None
    names = [r.name for r in energy_registers(profile.tariffs.count)]
    batches = request_plan(profile.modbus, names)
    per_read = len(batches)

    with simulated_meter(loaded.profile_paths[DUT], "bench-read-") as (tmp, port):
        clients: list[Any] = []
        try:
            endpoint = {"host": HOST, "port": port}
            raw = ModbusTcpClient(HOST, port=port, timeout=timing.request_timeout_s, retries=0)
            transcript = Transcript(tmp / "transcript.jsonl")
            api = ModbusDevice(DUT, profile, spec, timing, transcript=None, endpoint=endpoint)
            api_tx = ModbusDevice(DUT, profile, spec, timing, transcript=transcript, endpoint=endpoint)
            clients += [raw, api, api_tx, transcript]
            if not raw.connect():
                raise RuntimeError(f"raw client cannot connect to {HOST}:{port}")
            modes: dict[str, Callable[[], None]] = {
                "raw": raw_reader(raw, batches, spec.unit_id),
                "api": api_reader(api, names),
                "api+tx": api_reader(api_tx, names),
            }
            for read_all in modes.values():  # connect, plan and warm up outside the clock
                measure(read_all, 0.3)
            rates, cpu_us = interleaved({m: lambda s, f=f: measure(f, s) for m, f in modes.items()}, args.rounds,
                                        args.seconds)
        finally:
            for c in clients:
                c.close()

    summary: dict[str, Any] = {"batches": [list(b) for b in batches], "requests_per_read": per_read,
                               "registers_read": len(names), "rounds": args.rounds, "seconds": args.seconds}
    for mode, reads in rates.items():
        med = statistics.median(reads)
        summary[mode] = {"reads_per_s": round(med, 1), "requests_per_s": round(med * per_read, 1),
                         "client_cpu_us_per_read": round(statistics.median(cpu_us[mode]), 1),
                         "reads_per_s_rounds": [round(x, 1) for x in reads]}
    raw_rate = summary["raw"]["reads_per_s"]
    summary["ratio_api_raw"] = round(summary["api"]["reads_per_s"] / raw_rate, 3)
    summary["ratio_api_tx_raw"] = round(summary["api+tx"]["reads_per_s"] / raw_rate, 3)
    raw_cpu = summary["raw"]["client_cpu_us_per_read"]
    summary["cpu_ratio_api_raw"] = round(summary["api"]["client_cpu_us_per_read"] / raw_cpu, 3)
    summary["cpu_ratio_api_tx_raw"] = round(summary["api+tx"]["client_cpu_us_per_read"] / raw_cpu, 3)
    for mode in ("api", "api+tx"):  # paired within a round: less sensitive to slow phases of the machine
        paired = [a / b for a, b in zip(rates[mode], rates["raw"], strict=True)]
        summary[mode]["ratio_rounds"] = [round(x, 3) for x in paired]
        paired_cpu = [a / b for a, b in zip(cpu_us[mode], cpu_us["raw"], strict=True)]
        summary[mode]["cpu_ratio_rounds"] = [round(x, 3) for x in paired_cpu]
    summary["target_ratio"] = TARGET_RATIO
    summary["target_cpu_ratio"] = TARGET_CPU_RATIO

    print(f"{len(names)} energy registers in {per_read} requests {batches} (fc, address, count); "
          f"{args.rounds} rounds × {args.seconds:g} s, medians")
    print(f"{'client':8} {'requests/s':>11} {'reads/s':>9} {'vs raw':>7} {'CPU µs/read':>12} {'vs raw':>7}"
          "   reads/s per round")
    for mode in rates:
        s = summary[mode]
        print(f"{mode:8} {s['requests_per_s']:>11.1f} {s['reads_per_s']:>9.1f} "
              f"{s['reads_per_s'] / raw_rate:>7.3f} {s['client_cpu_us_per_read']:>12.1f} "
              f"{s['client_cpu_us_per_read'] / raw_cpu:>7.3f}   {s['reads_per_s_rounds']}")
    verdict = "meets" if summary["ratio_api_raw"] >= TARGET_RATIO else "MISSES"
    print(f"throughput: Device API / raw = {summary['ratio_api_raw']:.3f} ({verdict} the ≥ {TARGET_RATIO} target); "
          f"with transcript {summary['ratio_api_tx_raw']:.3f}")
    print(f"per-round throughput ratios: api {summary['api']['ratio_rounds']}, "
          f"api+tx {summary['api+tx']['ratio_rounds']}")
    verdict = "meets" if summary["cpu_ratio_api_tx_raw"] <= TARGET_CPU_RATIO else "MISSES"
    api_cpu, tx_cpu = summary["api"]["client_cpu_us_per_read"], summary["api+tx"]["client_cpu_us_per_read"]
    print(f"client CPU per read: raw {raw_cpu:.1f} µs (baseline), api {api_cpu:.1f} µs "
          f"= {summary['cpu_ratio_api_raw']:.3f} x raw, api+tx {tx_cpu:.1f} µs "
          f"= {summary['cpu_ratio_api_tx_raw']:.3f} x raw ({verdict} the ≤ {TARGET_CPU_RATIO} target)")
    print(f"per-round CPU ratios: api {summary['api']['cpu_ratio_rounds']}, "
          f"api+tx {summary['api+tx']['cpu_ratio_rounds']}")
    return emit(summary, args.json)


if __name__ == "__main__":
    raise SystemExit(main())
