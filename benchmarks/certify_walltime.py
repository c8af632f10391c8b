"""Wall time of a whole certification of the built-in rig, and where it goes per check.

Why: ``harness certify`` is what users and CI wait for. Its time is mostly deliberate waiting
(power-off times, the clock-drift observation window), not Modbus traffic; this shows which
check ids own the time, so that a speed-up is sought where the time actually is.

How: runs ``harness certify --out TMPDIR`` (the default built-in rig, a simulated meter on
loopback; or ``--rig RIG`` with ``--check ID`` …) as a subprocess ``--runs`` times, each bounded by
``--timeout`` seconds, and reports the wall time and exit code of each run, plus each check's duration
(``finished - started`` from ``TMPDIR/checks.jsonl``), their sum, and the time the checks covered
together (the union of their intervals): passive checks that overlap (harness/overlap.py) make the
sum exceed it, by the "overlapped" column. On a timeout certify gets SIGINT (pytest tears the bench
down and stops its simulator), then SIGKILL by its PID after a grace period. ``--baseline DIR``
(another checkout of the harness, e.g. ``git worktree add --detach ../base main``) runs that tree's
code with this interpreter (``PYTHONPATH=DIR``) in turn with this one — this, baseline, this, … — and
prints both medians and their ratio: a before/after figure from the same session, paired against the
load of the moment. Run it from a folder that finds Allure (the repository root), as a user would.

Run: ``python benchmarks/certify_walltime.py [--runs 1] [--timeout 300] [--json FILE] [--rig RIG] [--check ID]
[--baseline DIR]``. The last line of stdout is the JSON summary (with the median wall times).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

GRACE_S = 20.0


def harness_command() -> list[str]:
    """The ``harness`` console script of this interpreter's environment (else ``python -m harness``)."""
    script = Path(sys.executable).parent / "harness"
    return [str(script)] if script.exists() else [sys.executable, "-m", "harness"]


def run_certify(out: Path, timeout_s: float, log: Path, extra: Sequence[str] = (),
                tree: Path | None = None) -> tuple[int | None, float]:
    """Exit code (None on timeout) and wall seconds of one ``harness certify [RIG] --out OUT [--check ID …]``,
    of this environment's harness or (``tree``) of that source tree's."""
    # -P: not the current folder first on sys.path (it may hold this tree), but PYTHONPATH
    command = [sys.executable, "-P", "-m", "harness"] if tree else harness_command()
    env = {**os.environ, "PYTHONPATH": str(tree)} if tree else None
    with log.open("wb") as sink:
        t0 = time.perf_counter()
        proc = subprocess.Popen([*command, "certify", *extra, "--out", str(out)], stdout=sink,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        try:
            code: int | None = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            code = None
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=GRACE_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        return code, time.perf_counter() - t0


def check_durations(checks_jsonl: Path) -> list[dict[str, Any]]:
    """One row per check record: id, dut, verdict, seconds, and when it ran (started, finished)."""
    if not checks_jsonl.exists():
        return []
    rows = []
    for line in checks_jsonl.read_text(encoding="utf-8").splitlines():
        if line.strip():
            rec = json.loads(line)
            rows.append({"id": rec["id"], "dut": rec.get("dut"), "verdict": rec.get("verdict"),
                         "seconds": round(rec["finished"] - rec["started"], 3),
                         "started": rec["started"], "finished": rec["finished"]})
    return rows


def covered_s(checks: list[dict[str, Any]]) -> float:
    """Seconds during which at least one check ran (the union of their intervals)."""
    total, end = 0.0, float("-inf")
    for c in sorted(checks, key=lambda c: c["started"]):
        if c["finished"] > end:
            total += c["finished"] - max(c["started"], end)
            end = c["finished"]
    return total


def one_run(n: int, timeout_s: float, extra: Sequence[str], tree: Path | None) -> dict[str, Any]:
    """One certification in a fresh folder: its exit, wall time and check records."""
    with tempfile.TemporaryDirectory(prefix="bench-certify-") as tmp_name:
        tmp = Path(tmp_name)
        code, wall = run_certify(tmp / "out", timeout_s, tmp / "certify.log", extra, tree)
        checks = check_durations(tmp / "out" / "checks.jsonl")
        if code != 0:
            print(f"run {n}{' (baseline)' if tree else ''}: exit {code}; last lines of its output:", file=sys.stderr)
            tail = (tmp / "certify.log").read_text(encoding="utf-8", errors="replace").splitlines()[-15:]
            print("\n".join(tail), file=sys.stderr)
    return {"run": n, "exit_code": code, "timed_out": code is None, "wall_s": round(wall, 2),
            "checks_sum_s": round(sum(c["seconds"] for c in checks), 2),
            "checks_covered_s": round(covered_s(checks), 2), "checks": checks}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=1, help="certifications to run one after the other (default 1)")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds allowed per run (default 300)")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write the summary here")
    p.add_argument("--rig", type=Path, help="certify this rig (default: the built-in one)")
    p.add_argument("--check", action="append", default=[], metavar="ID", help="run only these checks")
    p.add_argument("--baseline", type=Path, metavar="DIR", help="another harness tree, run in turn with this one")
    args = p.parse_args(argv)
    if args.baseline and not (args.baseline / "harness" / "__init__.py").is_file():
        p.error(f"--baseline {args.baseline}: no harness package there")
    extra = ([str(args.rig.resolve())] if args.rig else []) + [a for c in args.check for a in ("--check", c)]
    if not (1 <= args.runs <= 20 and 10 <= args.timeout <= 3600):
        p.error("--runs must be 1..20 and --timeout 10..3600")

    runs: list[dict[str, Any]] = []  # this tree's
    baseline: list[dict[str, Any]] = []
    for i in range(args.runs):
        runs.append(one_run(i + 1, args.timeout, extra, None))
        if args.baseline:
            baseline.append(one_run(i + 1, args.timeout, extra, args.baseline.resolve()))

    per_check: dict[str, list[float]] = defaultdict(list)  # check id -> its seconds in each run (all DUTs)
    for run in runs:
        in_run: dict[str, float] = defaultdict(float)
        for c in run["checks"]:
            in_run[c["id"]] += c["seconds"]
        for cid, secs in in_run.items():
            per_check[cid].append(secs)
    print(f"{'run':>3} {'exit':>5} {'wall s':>8} {'Σ checks s':>11} {'overlapped s':>13} {'outside checks s':>17}")
    for run in runs:
        overlapped = run["checks_sum_s"] - run["checks_covered_s"]
        outside = run["wall_s"] - run["checks_covered_s"]
        print(f"{run['run']:>3} {run['exit_code']!s:>5} {run['wall_s']:>8.1f} {run['checks_sum_s']:>11.1f} "
              f"{overlapped:>13.1f} {outside:>17.1f}")
    median = statistics.median(r["wall_s"] for r in runs)
    print(f"median wall: {median:.1f} s over {len(runs)} run(s)")
    base_median = statistics.median(r["wall_s"] for r in baseline) if baseline else None
    if base_median is not None:
        walls = " ".join(f"{r['wall_s']:.1f}" for r in baseline)
        print(f"baseline {args.baseline}: walls {walls} s, median {base_median:.1f} s (exits "
              f"{', '.join(str(r['exit_code']) for r in baseline)}); this / baseline: {median / base_median:.3f}")
    means = {cid: sum(secs) / len(secs) for cid, secs in per_check.items()}
    total = sum(means.values()) or 1.0
    print(f"\n{'check':10} {'mean s':>8} {'max s':>8} {'share':>6}")
    for cid, mean in sorted(means.items(), key=lambda kv: -kv[1]):
        print(f"{cid:10} {mean:>8.2f} {max(per_check[cid]):>8.2f} {mean / total:>6.0%}")
    line = json.dumps({"runs": runs, "median_wall_s": median, "baseline_runs": baseline,
                       "baseline_median_wall_s": base_median, "timeout_s": args.timeout,
                       "rig": str(args.rig) if args.rig else "built-in", "checks": args.check}, separators=(",", ":"))
    if args.json:
        args.json.write_text(line + "\n", encoding="utf-8")
    print(line)
    return 0 if all(r["exit_code"] == 0 for r in runs + baseline) else 1


if __name__ == "__main__":
    raise SystemExit(main())
