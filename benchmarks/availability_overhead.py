"""What does the availability soak cost per poll? Polls/s it sustains against the simulated meter vs the raw driver.

Why: the soak (``harness/conformance/availability/soak.py``) wraps every poll in its own bookkeeping —
due-time grid, timing, one JSON line flushed to the evidence file per poll, a summary line per
minute. That must not be what limits how fast a lab can poll, nor skew the response times it
reports. A poll is one read of every point the profile declares (23 points of TEK-SIM-EM4 in 6
requests).

How: one simulated meter (``harness sim meter``) on a free loopback port with a throw-away state
directory, stopped by its PID at the end (helpers shared with ``read_throughput.py``). Three pollers,
back to back, in alternating rounds so that drift of the machine hits all of them alike:

* ``raw``   pymodbus ``ModbusTcpClient`` issuing exactly the driver's requests (``plan_batches``);
* ``api``   ``ModbusDevice.read_many(every point)``, no retries, no transcript — the soak's Device;
* ``soak``  ``run_soak`` itself with an interval far below the response time (so it polls back to back),
            evidence file included.

Figures are medians over rounds: polls/s, and this process's CPU µs per poll (the client side
alone, steadier than throughput where the simulator shares the machine).

Run: ``python benchmarks/availability_overhead.py [--rounds 5] [--seconds 2] [--json FILE]``.
The last line of stdout is the JSON summary.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from pymodbus.client import ModbusTcpClient
from read_throughput import HOST, emit, interleaved, measure, raw_reader, request_plan, simulated_meter

from harness.config import load_rig
from harness.config.availability import AvailabilitySoak
from harness.conformance.availability.soak import declared_points, run_soak
from harness.devices.modbus import ModbusDevice
from harness.resources import builtin_rig

DUT = "meter"
BACK_TO_BACK_S = 1e-4  # an interval no loopback poll can keep: the soak polls as fast as it can


def soak_round(dut: Any, seconds: float) -> tuple[int, float, float]:
    """One soak of ``seconds``: polls made, wall time and our CPU time."""
    spec = AvailabilitySoak(duration_s=seconds, interval_s=BACK_TO_BACK_S)
    t0, cpu0 = time.perf_counter(), time.process_time()
    soak = run_soak(dut, spec)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    failed = len(soak.polls.errors)
    if failed:
        raise RuntimeError(f"{failed} polls failed on loopback: {next(iter(soak.polls.errors.values()))}")
    return len(soak.polls), wall, cpu


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5, help="rounds per poller (default 5)")
    p.add_argument("--seconds", type=float, default=2.0, help="seconds per round (default 2)")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write the summary here")
    args = p.parse_args(argv)
    if not (1 <= args.rounds <= 50 and 0.5 <= args.seconds <= 30):
        p.error("--rounds must be 1..50 and --seconds 0.5..30")

    loaded = load_rig(builtin_rig())
    spec, profile = loaded.dut(DUT), loaded.profiles[DUT]
    timing = loaded.rig.timing.model_copy(update={"retries": 0})
    assert profile.modbus is not None
    names = declared_points(profile)
    batches = request_plan(profile.modbus, names)

    with simulated_meter(loaded.profile_paths[DUT], "bench-avail-") as (tmp, port):
        clients: list[Any] = []
        try:
            endpoint = {"host": HOST, "port": port}
            raw = ModbusTcpClient(HOST, port=port, timeout=timing.request_timeout_s, retries=0)
            api = ModbusDevice(DUT, profile, spec, timing, transcript=None, endpoint=endpoint)
            clients += [raw, api]
            if not raw.connect():
                raise RuntimeError(f"raw client cannot connect to {HOST}:{port}")
            # What run_soak reads of a DutRuntime: the bench would make this from the rig.
            dut = SimpleNamespace(name=DUT, profile=profile, spec=spec, timing=loaded.rig.timing, endpoint=endpoint,
                                  main_link=None, upstream=None, out_dir=tmp / "out", observations={},
                                  extra_device=lambda label, t, transcript=None: ModbusDevice(
                                      f"{DUT}/{label}", profile, spec, t, transcript=transcript, endpoint=endpoint))
            pollers: dict[str, Callable[[float], tuple[int, float, float]]] = {
                "raw": lambda s: measure(raw_reader(raw, batches, spec.unit_id), s),
                "api": lambda s: measure(lambda: api.read_many(names), s),
                "soak": lambda s: soak_round(dut, s),
            }
            for poll in pollers.values():  # connect, plan and warm up outside the clock
                poll(0.5)
            rates, cpu_us = interleaved(pollers, args.rounds, args.seconds)
            evidence = sorted((tmp / "out" / "availability").glob("*.jsonl"))
            bytes_per_poll = sum(f.stat().st_size for f in evidence) / max(1, sum(
                f.read_bytes().count(b'"type":"poll"') for f in evidence))
        finally:
            for c in clients:
                c.close()

    summary: dict[str, Any] = {"points": len(names), "requests_per_poll": len(batches), "rounds": args.rounds,
                               "seconds": args.seconds, "evidence_bytes_per_poll": round(bytes_per_poll, 1)}
    for mode, got in rates.items():
        summary[mode] = {"polls_per_s": round(statistics.median(got), 1),
                         "client_cpu_us_per_poll": round(statistics.median(cpu_us[mode]), 1),
                         "polls_per_s_rounds": [round(x, 1) for x in got]}
    raw_rate, api_rate = summary["raw"]["polls_per_s"], summary["api"]["polls_per_s"]
    summary["ratio_soak_api"] = round(summary["soak"]["polls_per_s"] / api_rate, 3)
    summary["ratio_soak_raw"] = round(summary["soak"]["polls_per_s"] / raw_rate, 3)
    summary["soak_cpu_us_over_api"] = round(summary["soak"]["client_cpu_us_per_poll"]
                                            - summary["api"]["client_cpu_us_per_poll"], 1)

    print(f"a poll = {len(names)} points in {len(batches)} requests {batches} (fc, address, count); "
          f"{args.rounds} rounds × {args.seconds:g} s, medians")
    print(f"{'poller':7} {'polls/s':>9} {'vs raw':>7} {'CPU µs/poll':>12}   polls/s per round")
    for mode in rates:
        s = summary[mode]
        print(f"{mode:7} {s['polls_per_s']:>9.1f} {s['polls_per_s'] / raw_rate:>7.3f} "
              f"{s['client_cpu_us_per_poll']:>12.1f}   {s['polls_per_s_rounds']}")
    print(f"soak / api = {summary['ratio_soak_api']:.3f}, soak / raw = {summary['ratio_soak_raw']:.3f}; the soak's own "
          f"bookkeeping costs {summary['soak_cpu_us_over_api']:g} µs CPU per poll; evidence "
          f"{summary['evidence_bytes_per_poll']:g} bytes per poll")
    return emit(summary, args.json)


if __name__ == "__main__":
    raise SystemExit(main())
