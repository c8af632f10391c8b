"""The fixed CPU cost of a `harness` process: a single-check certify run and a simulated meter's start-up.

Why: the self-tests start ~250 certify runs and hundreds of simulators, so what each process spends before it
does any work dominates their time (issue 18). This prints that cost, and — given ``--baseline PYTHON``, the
interpreter of another checkout's venv (e.g. main's) — the same figures for that checkout measured in the same
run, alternating one run of each, with the ratio of the medians. Each process starts in a temp folder, so
``-m harness`` imports the checkout its interpreter has installed, not the one in the current directory.

How: (1) ``harness certify --check KZ-95-01`` on the built-in rig into a fresh temp folder, the Allure HTML
skipped, signing with a throwaway lab key; CPU = user + system of the process and of the children it waited for
(the simulator, the link proxy), from ``os.wait4``. (2) ``harness sim meter`` as rigs/sim-meter.yaml starts it,
until it prints its ready line, then SIGTERM; CPU as above (start-up and a clean stop). Bytecode is cached
(``PYTHONPYCACHEPREFIX`` in a temp folder, warmed by one unmeasured run of each), as the self-tests do.

Run: ``python benchmarks/startup_cost.py [--runs 5] [--baseline /work/main/.venv/bin/python]``.
The last line of stdout is the JSON summary.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROFILE = ROOT / "device_profiles" / "tek-sim-em4.yaml"
READY_TIMEOUT_S = 30.0


def _reap(proc: subprocess.Popen[bytes]) -> float:
    """Wait for ``proc`` and return its CPU seconds (its own and its waited-for children's)."""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_utime + usage.ru_stime


def certify_cpu(python: str, env: dict[str, str], scratch: Path) -> float:
    out = Path(tempfile.mkdtemp(dir=scratch)) / "run"
    proc = subprocess.Popen([python, "-m", "harness", "certify", "--check", "KZ-95-01", "--out", str(out)],
                            env=env, cwd=scratch, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        cpu = _reap(proc)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    if proc.returncode != 0:
        raise SystemExit(f"{python}: certify exited {proc.returncode}")
    return cpu


def start_to_ready_cpu(command: list[str], env: dict[str, str], cwd: Path, ready: bytes) -> float:
    """CPU of one simulator start: ``command`` runs until its output holds ``ready`` (its ready line), then SIGTERM
    and a clean stop; user + system of the process and its waited-for children (os.wait4)."""
    proc = subprocess.Popen(command, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    try:
        assert proc.stdout is not None
        deadline, seen = time.monotonic() + READY_TIMEOUT_S, b""
        while ready not in seen:
            remaining = deadline - time.monotonic()
            chunk = os.read(proc.stdout.fileno(), 4096) if remaining > 0 and select.select(
                [proc.stdout], [], [], remaining)[0] else b""
            if not chunk:
                raise SystemExit(f"{command[0]}: the simulator exited or was not ready within {READY_TIMEOUT_S} s: "
                                 f"{seen[-300:]!r}")
            seen += chunk
        proc.send_signal(signal.SIGTERM)
        return _reap(proc)
    finally:
        if proc.returncode is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def sim_start_cpu(python: str, env: dict[str, str], scratch: Path) -> float:
    from harness.fault_injection.ports import free_port

    state = tempfile.mkdtemp(dir=scratch)
    return start_to_ready_cpu([python, "-m", "harness", "sim", "meter", "--profile", str(PROFILE), "--state-dir",
                               state, "--tcp", f"127.0.0.1:{free_port()}", "--load", "3000,500,1200,300"],
                              env, scratch, b"ready")  # the simulator prints a "... ready ..." line when it serves


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--baseline", metavar="PYTHON", help="another checkout's interpreter, measured alternately")
    args = ap.parse_args()
    pythons = {"this": sys.executable} | ({"baseline": args.baseline} if args.baseline else {})
    with tempfile.TemporaryDirectory(prefix="startup-cost-") as tmp:
        scratch = Path(tmp)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env |= {"PYTHONPYCACHEPREFIX": str(scratch / "pycache"), "HARNESS_NO_ALLURE_REPORT": "1",
                "HARNESS_KEY_DIR": str(scratch / "key")}
        subprocess.run([sys.executable, "-m", "harness", "keys", "init", "--name", "startup-cost bench"],
                       env=env, check=True, stdout=subprocess.DEVNULL)
        samples: dict[str, dict[str, list[float]]] = {name: {"certify": [], "sim": []} for name in pythons}
        for run in range(args.runs + 1):  # run 0 warms the bytecode cache and is not counted
            for name, python in pythons.items():
                certify, sim = certify_cpu(python, env, scratch), sim_start_cpu(python, env, scratch)
                if run:
                    samples[name]["certify"].append(certify)
                    samples[name]["sim"].append(sim)
    summary: dict[str, float] = {}
    for name, figures in samples.items():
        for what, values in figures.items():
            summary[f"{name}_{what}_cpu_s"] = round(statistics.median(values), 3)
            print(f"{name:8} {what:7} CPU s: median {statistics.median(values):.3f} "
                  f"(min {min(values):.3f}, max {max(values):.3f}, n {len(values)})")
    if args.baseline:
        for what in ("certify", "sim"):
            ratio = summary[f"this_{what}_cpu_s"] / summary[f"baseline_{what}_cpu_s"]
            summary[f"{what}_ratio"] = round(ratio, 3)
            print(f"{what}: this / baseline CPU = {ratio:.3f}")
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
