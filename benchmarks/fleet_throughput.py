"""Wall time of N simulated-rig jobs: sequential `harness certify` vs the fleet with 2 workers vs `--local 2`.

Why (issue 17): the fleet exists to run many certifications at once and to survive hosts; this shows what
running N jobs through it gains over running them one after another, what a local pool of the same jobs
gains, and what the fleet costs per job (queue to start, certify finished to result stored).

How: the built-in simulated meter rig with a short set of checks (``--checks``), N times (``--jobs``, default
12): (1) one `harness certify` after another; (2) a real `redis-server` on a free loopback port in a temporary
directory and two `harness fleet worker --simulated 1` (two benches of this machine), the N jobs submitted
to the shared queue at once, timed from the first submit to the last stored result; (3) the same N runs on a
pool of 2 local `harness certify` processes (what `harness fleet matrix --local 2` uses). Ratios are to (1),
measured in the same run. Then K jobs one at a time on idle workers give the per-job overhead: submit to
start of the task, and certify's end to the sealed archive stored (medians, ms). Every process started here
is stopped by its PID.

Run: ``python benchmarks/fleet_throughput.py [--jobs 12] [--json FILE]``. The last line of stdout is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.fault_injection.ports import free_port  # noqa: E402
from harness.fleet.runner import certify_argv, run_certify  # noqa: E402
from harness.resources import builtin_rig  # noqa: E402

CHECKS = ["KZ-95-01", "KZ-95-03", "KZ-95-09"]
JOB_TIMEOUT_S = 300.0


def sequential(n: int, checks: list[str], base: Path) -> float:
    t0 = time.monotonic()
    for i in range(n):
        folder = base / f"seq-{i}"
        code = run_certify(certify_argv({"checks": checks}, builtin_rig(), folder / "run"), folder / "progress.jsonl",
                           folder / "certify.log")
        assert code == 0, (folder / "certify.log").read_text()
    return time.monotonic() - t0


def local_pool(n: int, checks: list[str], base: Path, workers: int = 2) -> float:
    def one(i: int) -> int:
        folder = base / f"local-{i}"
        return run_certify(certify_argv({"checks": checks}, builtin_rig(), folder / "run"), folder / "progress.jsonl",
                           folder / "certify.log")

    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        codes = list(pool.map(one, range(n)))
    assert codes == [0] * n, codes
    return time.monotonic() - t0


def start_redis(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    import redis

    exe = shutil.which("redis-server")
    if exe is None:
        raise SystemExit("redis-server is not installed (./setup.sh installs it as root)")
    port = free_port()
    proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder), "--save", "",
                             "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while True:
        try:
            redis.Redis.from_url(url).ping()
            return proc, url
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                proc.kill()
                raise
            time.sleep(0.1)


def start_workers(url: str, base: Path) -> list[subprocess.Popen[bytes]]:
    from harness.fleet.state import Registry

    procs = []
    for bench in ("bench-1", "bench-2"):
        log = (base / f"{bench}.log").open("ab")
        procs.append(subprocess.Popen([sys.executable, "-m", "harness", "fleet", "worker", "--bench", bench, "--broker",
                                       url, "--store", str(base / "store"), "--work", str(base / f"work-{bench}"),
                                       "--simulated", "1"], stdout=log, stderr=subprocess.STDOUT))
    registry = Registry(url)
    deadline = time.monotonic() + 30
    while len(registry.served()) < 2:
        assert time.monotonic() < deadline, "the workers did not start"
        time.sleep(0.1)
    time.sleep(2)  # the celery workers under them connect
    return procs


def submit(url: str, checks: list[str]) -> str:
    from harness.fleet.client import enqueue, prepare
    from harness.fleet.state import Registry

    loaded, config = prepare(builtin_rig(), None, [], [])
    return enqueue(Registry(url), loaded, config, None, suites=[], checks=checks, defects=[], reruns=None)


def wait(jobs: list[str]) -> dict[str, dict]:
    from harness.fleet.app import app

    deadline = time.monotonic() + JOB_TIMEOUT_S * len(jobs)
    results: dict[str, dict] = {}
    while len(results) < len(jobs):
        assert time.monotonic() < deadline, f"{len(jobs) - len(results)} job(s) not finished"
        for job in jobs:
            if job not in results:
                result = app.AsyncResult(job)
                if result.state == "SUCCESS":
                    results[job] = result.info
                elif result.state == "FAILURE":
                    raise SystemExit(f"job {job} failed: {result.info}")
        time.sleep(0.2 if len(jobs) > 1 else 0.02)  # fine-grained only where one job's overhead is timed
    return results


def fleet(n: int, k: int, checks: list[str], base: Path) -> dict[str, float]:
    from harness.fleet.app import app, configure
    from harness.fleet.state import Registry

    redis_proc, url = start_redis(base)
    workers: list[subprocess.Popen[bytes]] = []
    try:
        configure(app, url)
        workers = start_workers(url, base)
        registry = Registry(url)
        t0 = time.monotonic()
        jobs = [submit(url, checks) for _ in range(n)]
        wait(jobs)
        wall = time.monotonic() - t0
        to_start, to_stored = [], []
        for _ in range(k):  # one at a time on idle workers: the fleet's own cost per job
            job = submit(url, checks)
            meta = wait([job])[job]
            to_start.append(meta["started"] - registry.job(job)["submitted"])
            to_stored.append(meta["stored"] - meta["certified"])
        return {"wall_s": wall, "submit_to_start_ms": statistics.median(to_start) * 1000,
                "certified_to_stored_ms": statistics.median(to_stored) * 1000}
    finally:
        for proc in workers:
            proc.terminate()
        for proc in workers:
            proc.wait(timeout=60)
        redis_proc.terminate()
        redis_proc.wait(timeout=10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=12)
    parser.add_argument("--overhead-jobs", type=int, default=5)
    parser.add_argument("--checks", default=",".join(CHECKS))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    checks = [c for c in args.checks.split(",") if c]
    os.environ.setdefault("HARNESS_NO_ALLURE_REPORT", "1")
    with tempfile.TemporaryDirectory(prefix="fleet-bench-") as tmp:
        base = Path(tmp)
        os.environ.setdefault("HARNESS_KEY_DIR", str(base / "lab-key"))
        seq = sequential(args.jobs, checks, base)
        print(f"sequential: {args.jobs} x harness certify: {seq:.1f} s", flush=True)
        flt = fleet(args.jobs, args.overhead_jobs, checks, base)
        print(f"fleet, 2 workers: {flt['wall_s']:.1f} s", flush=True)
        loc = local_pool(args.jobs, checks, base)
        print(f"--local 2: {loc:.1f} s", flush=True)
    summary = {"jobs": args.jobs, "checks": checks, "cpus": os.cpu_count(), "sequential_s": round(seq, 2),
               "fleet_2_workers_s": round(flt["wall_s"], 2), "local_2_s": round(loc, 2),
               "fleet_vs_sequential": round(flt["wall_s"] / seq, 3), "local_vs_sequential": round(loc / seq, 3),
               "submit_to_start_ms": round(flt["submit_to_start_ms"], 1),
               "certified_to_stored_ms": round(flt["certified_to_stored_ms"], 1)}
    print(f"fleet/sequential {summary['fleet_vs_sequential']}, local/sequential {summary['local_vs_sequential']}; "
          f"per job: submit->start {summary['submit_to_start_ms']} ms, certified->stored "
          f"{summary['certified_to_stored_ms']} ms (medians of {args.overhead_jobs})")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
