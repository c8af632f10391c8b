"""How much does the OPC UA driver cost over bare asyncua? Reads of the process values on loopback.

Why: every OPC UA check reads through ``OpcuaDevice`` (its own asyncio loop on a thread, bounded waits,
retries on a new session, transcript, units). Issue 18: reads through the driver ≥ 0.85 × raw asyncua
``read_values`` on the same server in the same run.

How: the built-in simulated controller (``rigs/sim-controller.yaml``, the project's OPC UA simulator, with
its PKI, accounts and link-fault proxy) is brought up by a ``Bench`` exactly as a certification run does,
in a throw-away folder, and stopped at the end. Two clients read the profile's process values (one Read
request per read), in alternating rounds of a few seconds so that drift of the machine hits both alike:

* ``raw``     an asyncua ``Client`` session opened with the very spec the driver uses (endpoint, security
              policy and mode, certificate, user), ``await client.read_values(nodes)`` in a loop on this
              thread's own event loop — what a hand-written asyncua script does;
* ``driver``  ``OpcuaDevice.read_many(names)`` from this (synchronous) thread, transcript on, as the
              suites call it.

Figures are medians over rounds: reads/s and this process's CPU µs per read (both threads of the
driver counted), each next to raw's from the same run, with the paired per-round ratios.

Run: ``python benchmarks/opcua_read_throughput.py [--rounds 5] [--seconds 2] [--json FILE]``.
The last line of stdout is the JSON summary.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from read_throughput import emit, interleaved, measure, rounds_args

from harness.bench import Bench
from harness.config import load_rig
from harness.devices.opcua import OpcuaDevice
from harness.devices.opcua_session import open_session

RIG = Path(__file__).resolve().parent.parent / "rigs" / "sim-controller.yaml"
DUT = "plc"
KIND = "process_value"
TARGET_RATIO = 0.85


def raw_round(client: Any, nodes: list[Any]) -> Any:
    """A measurer for ``interleaved``: ``read_values`` in a loop for about ``seconds`` on the caller's loop."""
    async def reads(seconds: float) -> tuple[int, float, float]:
        done, t0, cpu0 = 0, time.perf_counter(), time.process_time()
        deadline = t0 + seconds
        while True:
            await client.read_values(nodes)
            done += 1
            now = time.perf_counter()
            if now >= deadline:
                return done, now - t0, time.process_time() - cpu0
    return reads


def main(argv: list[str] | None = None) -> int:
    args = rounds_args(__doc__, argv)

    loaded = load_rig(RIG)
    opcua = loaded.profiles[DUT].opcua
    assert opcua is not None
    names = [n for n, point in opcua.points.items() if point.kind == KIND]
    loop = asyncio.new_event_loop()
    with tempfile.TemporaryDirectory(prefix="bench-opcua-") as tmp:
        bench = Bench(loaded, Path(tmp) / "out")
        live = None
        try:
            device = bench.dut(DUT).device
            assert isinstance(device, OpcuaDevice)
            device.read_many(names)  # the driver's session, opened outside the clock
            spec = device.spec()
            security = f"{spec.policy.value} / {spec.mode.value}"
            live, attempt = loop.run_until_complete(open_session(spec))
            if live is None:
                raise RuntimeError(f"raw asyncua session refused: {attempt}")
            session = live
            nodes = [session.node(loop.run_until_complete(session.node_id(opcua.points[n].node))) for n in names]
            raw = raw_round(session.client, nodes)
            measurers = {"raw": lambda s: loop.run_until_complete(raw(s)),
                         "driver": lambda s: measure(lambda: device.read_many(names), s)}
            for m in measurers.values():  # warm up outside the clock
                m(0.3)
            rates, cpu_us = interleaved(measurers, args.rounds, args.seconds)
        finally:
            if live is not None:
                loop.run_until_complete(live.close())
            loop.close()
            bench.close()

    summary: dict[str, Any] = {"quantities": names, "rounds": args.rounds, "seconds": args.seconds,
                               "security": security}
    for mode in rates:
        summary[mode] = {"reads_per_s": round(statistics.median(rates[mode]), 1),
                         "client_cpu_us_per_read": round(statistics.median(cpu_us[mode]), 1),
                         "reads_per_s_rounds": [round(x, 1) for x in rates[mode]]}
    raw_rate, raw_cpu = summary["raw"]["reads_per_s"], summary["raw"]["client_cpu_us_per_read"]
    summary["ratio_driver_raw"] = round(summary["driver"]["reads_per_s"] / raw_rate, 3)
    summary["cpu_ratio_driver_raw"] = round(summary["driver"]["client_cpu_us_per_read"] / raw_cpu, 3)
    summary["driver"]["ratio_rounds"] = [round(a / b, 3) for a, b in zip(rates["driver"], rates["raw"], strict=True)]
    summary["driver"]["cpu_ratio_rounds"] = [round(a / b, 3) for a, b in
                                             zip(cpu_us["driver"], cpu_us["raw"], strict=True)]
    summary["target_ratio"] = TARGET_RATIO

    print(f"{len(names)} {KIND} nodes in one Read request ({summary['security']}); "
          f"{args.rounds} rounds × {args.seconds:g} s, medians")
    print(f"{'client':8} {'reads/s':>9} {'vs raw':>7} {'CPU µs/read':>12} {'vs raw':>7}   reads/s per round")
    for mode in rates:
        s = summary[mode]
        print(f"{mode:8} {s['reads_per_s']:>9.1f} {s['reads_per_s'] / raw_rate:>7.3f} "
              f"{s['client_cpu_us_per_read']:>12.1f} {s['client_cpu_us_per_read'] / raw_cpu:>7.3f}   "
              f"{s['reads_per_s_rounds']}")
    verdict = "meets" if summary["ratio_driver_raw"] >= TARGET_RATIO else "MISSES"
    print(f"driver / raw asyncua = {summary['ratio_driver_raw']:.3f} reads/s ({verdict} the ≥ {TARGET_RATIO} target); "
          f"CPU per read {summary['cpu_ratio_driver_raw']:.3f} x raw")
    print(f"per-round ratios: reads/s {summary['driver']['ratio_rounds']}, "
          f"CPU {summary['driver']['cpu_ratio_rounds']}")
    return emit(summary, args.json)


if __name__ == "__main__":
    raise SystemExit(main())
