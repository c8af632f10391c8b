"""The CPU a simulated controller's start costs: `harness sim controller` as rigs/sim-controller.yaml starts it.

Why: the controller simulator is the self-tests' largest CPU consumer (issue 18): every defect DUT, power cut and
golden run starts one, and each start built asyncua's standard address space (~6000 nodes) from scratch. This
prints the CPU per start from a fresh state directory (as a test's DUT starts) with the standard-node cache off
and on (``HARNESS_SIM_CACHE_DIR``, harness/simulators/controller/standard_space.py; the self-tests set it), and —
given ``--baseline CHECKOUT``, another checkout of tek-harness (e.g. ``git worktree add /tmp/base main``) — the
same start of that checkout's code in the same run, alternating one start of each, with the ratios of the medians.

How: each start runs until the simulator prints its ready line, then SIGTERM; CPU = user + system of the process
(``os.wait4``: start-up and a clean stop). Bytecode is cached (``PYTHONPYCACHEPREFIX`` in a temp folder) and the
node cache is filled by one unmeasured start of each kind first, as in the self-tests after their first start.

Run: ``python benchmarks/controller_start.py [--runs 5] [--baseline /tmp/base]``. The last line of stdout is the
JSON summary.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

from startup_cost import start_to_ready_cpu


def start_cpu(env: dict[str, str], scratch: Path) -> float:
    """One start of the golden controller on a fresh state directory, to its ready line and a clean stop."""
    from harness.fault_injection.ports import free_port

    return start_to_ready_cpu([sys.executable, "-m", "harness", "sim", "controller", "--state-dir",
                               tempfile.mkdtemp(dir=scratch), "--tcp", f"127.0.0.1:{free_port()}", "--control",
                               str(free_port()), "--users", "admin1:Adm1n-bench-2025:administrator"],
                              env, scratch, b"ready on")  # "harness sim controller ready on opc.tcp://…"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--baseline", metavar="CHECKOUT", type=Path, help="another checkout, measured alternately")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="controller-start-") as tmp:
        scratch = Path(tmp)
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "HARNESS_SIM_CACHE_DIR")}
        env["PYTHONPYCACHEPREFIX"] = str(scratch / "pycache")
        kinds = {"no_cache": env, "cache": env | {"HARNESS_SIM_CACHE_DIR": str(scratch / "sim-cache")}}
        if args.baseline:
            kinds["baseline"] = env | {"PYTHONPATH": str(args.baseline.resolve())}
        samples: dict[str, list[float]] = {name: [] for name in kinds}
        for run in range(args.runs + 1):  # run 0 warms the bytecode and node caches and is not counted
            for name, kind_env in kinds.items():
                cpu = start_cpu(kind_env, scratch)
                if run:
                    samples[name].append(cpu)
    summary: dict[str, float] = {}
    for name, values in samples.items():
        summary[f"{name}_cpu_s"] = round(statistics.median(values), 3)
        print(f"{name:9} CPU s per start: median {statistics.median(values):.3f} "
              f"(min {min(values):.3f}, max {max(values):.3f}, n {len(values)})")
    summary["cache_ratio"] = round(summary["cache_cpu_s"] / summary["no_cache_cpu_s"], 3)
    print(f"cache / no cache CPU = {summary['cache_ratio']:.3f}")
    if args.baseline:
        for name in ("no_cache", "cache"):
            summary[f"{name}_to_baseline"] = round(summary[f"{name}_cpu_s"] / summary["baseline_cpu_s"], 3)
            print(f"{name} / baseline CPU = {summary[f'{name}_to_baseline']:.3f}")
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
