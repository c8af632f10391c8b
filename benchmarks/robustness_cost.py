"""How fast does the robustness suite fuzz the simulated meter, and what does monitoring cost the harness?

Why: KZ-49-01 sends its cases one per fresh TCP connection, each awaited for ``case_timeout_s``, while a
monitor thread reads the essential function every ``monitor_interval_s`` on the Device API. A lab raises
the campaign size by orders of magnitude, so cases/s decides how long a certification run takes, and the
monitor must not be what the harness spends its CPU on.

How: one simulated meter (``harness sim meter``, the built-in profile, golden) on a free loopback port with
a throw-away state directory, stopped by its PID at the end. The campaign is the suite's own: the rig's
seed, ``modbus_cases``, ``Campaign.fuzz`` with the rate bound lifted. Rounds alternate *with* and *without*
the suite's ``Monitor`` (same cases, same simulator, same run), each measuring wall time and this process's
CPU time (``time.process_time``: every harness thread, the monitor's included). Reported: cases/s (median
over rounds, both modes) and the CPU ratio with/without monitoring (median of the per-round-pair ratios).

Run: ``python benchmarks/robustness_cost.py [--rounds 4] [--cases 400] [--json FILE]``.
The last line of stdout is the JSON summary.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from harness.config import load_rig
from harness.conformance.robustness.essential import Monitor, essential_quantities
from harness.conformance.wire.campaign import Campaign
from harness.conformance.wire.modbus_fuzz import modbus_cases
from harness.conformance.wire.tcp import mbap_length
from harness.devices.modbus import ModbusDevice
from harness.resources import builtin_rig

sys.path.insert(0, str(Path(__file__).resolve().parent))
from read_throughput import HOST, emit, simulated_meter

DUT = "meter"


def one_round(host: str, port: int, settings: Any, cases: list, monitor: Monitor | None) -> dict[str, float]:
    campaign = Campaign(host, port, settings, mbap_length)
    cpu0, t0 = time.process_time(), time.perf_counter()
    if monitor is not None:
        with monitor:
            outcomes = campaign.fuzz(cases, lambda: monitor.down, 1.0)
    else:
        outcomes = campaign.fuzz(cases, lambda: False, 1.0)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    sent = sum(1 for o in outcomes if o.refused is None)
    return {"cases": sent, "wall_s": wall, "cpu_s": cpu, "cases_per_s": sent / wall,
            "answered": sum(1 for o in outcomes if o.reply), "monitor_reads": len(monitor.samples) if monitor else 0}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=4, help="round pairs (with and without monitor), default 4")
    p.add_argument("--cases", type=int, default=400, help="fuzz cases per round (default 400)")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write the summary here")
    args = p.parse_args(argv)
    if not (1 <= args.rounds <= 20 and 10 <= args.cases <= 20_000):
        p.error("--rounds must be 1..20 and --cases 10..20000")

    loaded = load_rig(builtin_rig())
    rig, spec, profile, timing = loaded.rig, loaded.dut(DUT), loaded.profiles[DUT], loaded.rig.timing
    settings = rig.robustness.model_copy(update={"rate_per_s": 1e6, "max_duration_s": 600.0})
    cases = modbus_cases(rig.seed, args.cases, spec.unit_id)
    rounds: dict[str, list[dict[str, float]]] = {"without": [], "with": []}
    with simulated_meter(loaded.profile_paths[DUT], "bench-robustness-") as (_tmp, port):
        device = None
        try:
            device = ModbusDevice(DUT, profile, spec, timing, transcript=None, endpoint={"host": HOST, "port": port})
            dut = SimpleNamespace(device=device, timing=timing, profile=profile)
            quantities = essential_quantities(dut)
            one_round(HOST, port, settings, cases[:20], None)  # warm up outside the clock
            for r in range(args.rounds):
                for mode in (("without", "with") if r % 2 == 0 else ("with", "without")):
                    monitor = Monitor(dut, quantities, settings.monitor_interval_s) if mode == "with" else None
                    rounds[mode].append(one_round(HOST, port, settings, cases, monitor))
        finally:
            if device is not None:
                device.close()

    ratio = [w["cpu_s"] / o["cpu_s"] for w, o in zip(rounds["with"], rounds["without"], strict=True)]
    summary: dict[str, Any] = {
        "cases_per_round": args.cases, "rounds": args.rounds, "seed": rig.seed,
        "case_timeout_s": settings.case_timeout_s, "monitor_interval_s": settings.monitor_interval_s,
        **{mode: {"cases_per_s": round(statistics.median(x["cases_per_s"] for x in rs), 1),
                  "cpu_s_per_round": round(statistics.median(x["cpu_s"] for x in rs), 3),
                  "cpu_us_per_case": round(statistics.median(x["cpu_s"] / x["cases"] * 1e6 for x in rs), 1),
                  "answered_per_round": statistics.median(x["answered"] for x in rs),
                  "monitor_reads_per_round": statistics.median(x["monitor_reads"] for x in rs)}
           for mode, rs in rounds.items()},
        "cpu_ratio_with_without_monitor": round(statistics.median(ratio), 3),
        "cpu_ratio_rounds": [round(x, 3) for x in ratio],
    }
    print(f"{args.cases} Modbus/TCP fuzz cases (seed {rig.seed}) per round, {args.rounds} round pairs, medians")
    for mode in ("without", "with"):
        s = summary[mode]
        print(f"{mode:8} monitor: {s['cases_per_s']:8.1f} cases/s, {s['cpu_us_per_case']:7.1f} harness CPU µs/case, "
              f"{s['monitor_reads_per_round']:.0f} monitor reads/round")
    print(f"harness CPU with / without monitoring: {summary['cpu_ratio_with_without_monitor']:.3f} "
          f"(per round pair {summary['cpu_ratio_rounds']})")
    return emit(summary, args.json)


if __name__ == "__main__":
    raise SystemExit(main())
