"""Fleet (issue 17): jobs on Celery + a real Redis, routed to benches, crash-safe, fetched with a verified seal."""

from __future__ import annotations

import base64
import contextlib
import gzip
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.cli import main as harness_cli
from harness.config import load_rig
from harness.fleet.app import BROKER_ENV
from harness.fleet.client import prepare
from harness.fleet.errors import FleetError
from harness.fleet.job import JobError, pack, unpack
from harness.fleet.lease import JobLease
from harness.fleet.matrix import plan
from harness.fleet.state import LEASE_ENV, Registry, fleet_host
from harness.fleet.store import DirectoryStore, StoreError, open_store
from harness.fleet.worker import sweep
from harness.hookspecs import ResultStoreSpec, hookimpl
from harness.registry import plugin_manager
from harness.resources import builtin_rig
from harness.simulators.defects import HEAT_DEFECTS, METER_DEFECTS
from tests.conftest import run_cli
from tests.fleet_fixtures import TEST_LEASE_S, Redis, Worker, processes_naming, redis_server, start_worker, wait_for

__all__ = ["redis_server"]  # the fixture, imported so pytest finds it here

ONE_CHECK = ["--check", "KZ-95-01"]
# KZ-95-10 cuts the power for seconds: a window to kill the worker in (or cancel the job), mid-job.
POWER_CUT = ["--check", "KZ-95-10"]
THREE_CHECKS = ["--check", "KZ-95-01", "--check", "KZ-95-10", "--check", "KZ-95-09"]  # run in order 01, 09, 10


def _in_power_cut(info: dict) -> bool:
    return str(info.get("current") or "").startswith("KZ-95-10")


def fleet_cli(*args: str) -> int:
    """`harness fleet ARGS` in this process (the quick commands; jobs and workers run as real processes)."""
    return harness_cli(["fleet", *args])


def _fleet(*args: str) -> tuple[int, str, str]:
    """`harness fleet ARGS` in this process: exit code, stdout, stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = fleet_cli(*args)
    return code, out.getvalue(), err.getvalue()


def _submit(url: str, *args: str) -> str:
    code, out, err = _fleet("submit", "--broker", url, *args)
    assert code == 0, err
    return out.strip()


def _fetch(url: str, job: str, to: Path, *more: str) -> tuple[int, str]:
    code, out, err = _fleet("fetch", job, "--to", str(to), "--broker", url, *more)
    return code, out + err


def test_a_job_ships_every_file_the_rig_names_and_a_changed_byte_stops_it(tmp_path: Path) -> None:
    config = pack(load_rig(builtin_rig()))
    names = set(config["files"])
    assert config["rig"] == "rigs/sim-meter.yaml"
    assert "device_profiles/tek-sim-em4.yaml" in names
    assert any(n.startswith("device_profiles/docs/") for n in names)  # documents the profile declares
    rig = unpack(config, tmp_path / "ok")
    assert load_rig(rig).rig.name == "sim-meter"  # the relative paths find the shipped files again
    doc = next(n for n in names if n.startswith("device_profiles/docs/"))
    config["files"][doc]["data"] = base64.b64encode(b"not the manual").decode()
    with pytest.raises(JobError, match=doc):
        unpack(config, tmp_path / "changed")


def test_keys_and_firmware_images_travel_too_and_an_absolute_path_is_refused(tmp_path: Path) -> None:
    shutil.copytree(builtin_rig().parent.parent / "device_profiles", tmp_path / "device_profiles")
    (tmp_path / "rigs" / "lab").mkdir(parents=True)
    for name in ("client.der", "client.pem", "fw-2.1.img", "fw-2.2.img"):
        (tmp_path / "rigs" / "lab" / name).write_bytes(name.encode())
    text = builtin_rig().read_text()
    extra = ("    client_certificate: lab/client.der\n    client_key: lab/client.pem\n"
             "    firmware: {current: lab/fw-2.1.img, next: lab/fw-2.2.img}\n    transport:")
    rig = tmp_path / "rigs" / "lab-meter.yaml"
    rig.write_text(text.replace("    transport:", extra, 1))
    shipped = set(pack(load_rig(rig))["files"])
    assert {f"rigs/lab/{n}" for n in ("client.der", "client.pem", "fw-2.1.img", "fw-2.2.img")} <= shipped

    absolute = tmp_path / "rigs" / "absolute.yaml"
    absolute.write_text(text.replace("../device_profiles/", f"{tmp_path}/device_profiles/"))
    with pytest.raises(JobError, match="absolute path"):
        pack(load_rig(absolute))


def test_a_plugin_adds_a_result_store_by_its_scheme(tmp_path: Path) -> None:
    class Plugin:
        @hookimpl
        def harness_add_result_stores(self) -> list[ResultStoreSpec]:
            return [ResultStoreSpec("lab", lambda location: DirectoryStore(str(tmp_path / location[6:])))]

    pm = plugin_manager()
    plugin = pm.register(Plugin())
    try:
        store = open_store("lab://results")
        assert store.location == str(tmp_path / "results")
        with pytest.raises(StoreError, match=r"no result store for nope://; stores: ") as refused:
            open_store("nope://x")
        assert "dir://" in str(refused.value) and "lab://" in str(refused.value)
    finally:
        pm.unregister(name=plugin)


def test_a_rig_with_real_equipment_needs_a_bench(tmp_path: Path) -> None:
    real = tmp_path / "real.yaml"
    profile = builtin_rig().parent.parent / "device_profiles" / "tek-sim-em4.yaml"
    real.write_text(f"name: lab-meter\nduts:\n  meter:\n    profile: {profile}\n"
                    "    transport: {tcp: {host: 127.0.0.1, port: 1502}}\n")
    with pytest.raises(FleetError, match=r"DUT 'meter' is real equipment .* --bench"):
        prepare(real, None, [], [])


def test_a_matrix_of_all_defects_is_each_rig_golden_and_each_defect_of_its_simulators() -> None:
    meter, heat = builtin_rig(), builtin_rig("sim-heat-meter.yaml")
    entries = plan([meter, heat], "all")
    by_rig = {rig: [e for e in entries if e.rig == rig] for rig in (meter, heat)}
    for rig, catalogue in ((meter, METER_DEFECTS), (heat, HEAT_DEFECTS)):
        golden, *defects = by_rig[rig]
        assert golden.defect is None and golden.options()["defects"] == []
        assert {e.defect.name for e in defects if e.defect} == set(catalogue)  # every seeded defect, one job each
        assert golden.checks == sorted({d.expect for d in catalogue.values()})  # golden passes what they must fail
        one = defects[0]
        assert one.options() == {"suites": [], "checks": [one.defect.expect], "defects": [one.defect.name],
                                 "reruns": 0}
    with pytest.raises(FleetError, match="no rig given has a simulator with defect"):
        plan([heat], "register_missing")


@pytest.fixture(scope="module")
def benches(redis_server: Redis, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Worker]]:
    """Two benches, a and b, each also taking one simulated job at a time; as if on two hosts (each its own
    fleet host name and run root)."""
    tmp_path = tmp_path_factory.mktemp("benches")
    workers: dict[str, Worker] = {}
    try:
        for bench in ("a", "b"):
            workers[bench] = start_worker(redis_server.url, bench, tmp_path / "store", tmp_path / f"work-{bench}",
                                          tmp_path / f"worker-{bench}.log", simulated=1, host=f"host-{bench}")
        yield workers
    finally:
        for worker in workers.values():
            worker.stop()


def test_jobs_run_on_their_bench_and_a_matrix_on_the_shared_queue(redis_server: Redis, benches: dict[str, Worker],
                                                                  tmp_path: Path) -> None:
    url = redis_server.url
    jobs = {"a": _submit(url, "--bench", "a", *ONE_CHECK), "b": _submit(url, "--bench", "b", *ONE_CHECK)}
    # Built-in simulated rigs golden and with a seeded defect each, through the fleet's shared queue.
    code, out, err = _fleet("matrix", str(builtin_rig()), str(builtin_rig("sim-heat-meter.yaml")), "--defects",
                            "register_missing,heat_mass_not_recorded", "--broker", url, "--timeout", "150")
    assert code == 0, out + err
    assert "4/4 as expected" in out and "FAIL KZ-96-01" in out, out
    results = {name: wait_for(url, job) for name, job in jobs.items()}
    assert {n: r.state for n, r in results.items()} == dict.fromkeys(jobs, "SUCCESS"), \
        {n: r.info for n, r in results.items()}
    assert results["a"].info["worker"].startswith("a@")  # a bench's job only on its bench's own worker
    assert results["b"].info["worker"].startswith("b@")
    assert all(r.info["verdict"] == "PASS" and r.info["verdicts"] == {"PASS": 1} for r in results.values())

    code, out, _ = _fleet("status", "--broker", url)
    rows = [line for line in out.splitlines()[1:] if line.strip()]
    assert code == 0 and len(rows) == 6 and all("SUCCESS" in row for row in rows), out
    assert sum("(shared) a" in row or "(shared) b" in row for row in rows) == 4  # ran on a -simulated worker

    code, output = _fetch(url, jobs["a"], tmp_path / "fetched")
    assert code == 0, output
    assert "seal OK" in output
    run = next((tmp_path / "fetched").iterdir())
    assert [json.loads(line)["id"] for line in (run / "checks.jsonl").read_text().splitlines()] == ["KZ-95-01"]

    # The README's monitoring: Celery's own tools on our app, the broker from the fleet's variable.
    ping = subprocess.run([sys.executable, "-m", "celery", "-A", "harness.fleet.app", "inspect", "ping", "-t", "5"],
                          env={**os.environ, BROKER_ENV: url}, capture_output=True, text=True, timeout=60)
    assert ping.returncode == 0, ping.stdout + ping.stderr
    assert all(f"{name}@host-{bench}: OK" in ping.stdout for bench in "ab" for name in (bench, f"{bench}-simulated"))

    # One worker per bench: a second one for bench a is refused while the first lives.
    code, _, err = _fleet("worker", "--bench", "a", "--broker", url, "--store", str(tmp_path / "s2"))
    assert code == 2 and "bench 'a' is already served by host-a (pid" in err, err

    # A result changed in the store after the worker sealed it is refused, and nothing of it is kept.
    stored = Path(results["b"].info["store"]) / f"{jobs['b']}.tar.gz"
    stored.write_bytes(_with_changed_verdicts(stored.read_bytes()))
    code, output = _fetch(url, jobs["b"], tmp_path / "refused")
    assert code == 1 and "refused" in output, output
    assert not any((tmp_path / "refused").iterdir())


def _with_changed_verdicts(archive: bytes) -> bytes:
    """The same archive with verdicts.json edited: what a tampered store would hand out."""
    out = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(archive)) as src, \
            gzip.GzipFile(fileobj=out, mode="wb") as gz, tarfile.open(fileobj=gz, mode="w") as dst:
        for member in src.getmembers():
            data = src.extractfile(member).read() if member.isfile() else None  # type: ignore[union-attr]
            if member.name.endswith("verdicts.json") and data is not None:
                data = data.replace(b'"PASS"', b'"FAIL"', 1)
                member.size = len(data)
            dst.addfile(member, io.BytesIO(data) if data is not None else None)
    return out.getvalue()


def _none_left(folder: Path, within_s: float = 15.0) -> None:
    """No process (certify, its simulators) runs in the job's folder any more, waited for boundedly."""
    deadline = time.monotonic() + within_s
    while processes_naming(str(folder)):
        assert time.monotonic() < deadline, processes_naming(str(folder))
        time.sleep(0.1)


def _one_verified_result(url: str, store: Path, job: str, to: Path, *more: str) -> list[str]:
    """The store holds one result of the job, fetched with its seal verified: the ids of its checks, in order."""
    assert sorted(p.name for p in store.glob(f"{job}*")) == [f"{job}.json", f"{job}.tar.gz"]
    code, output = _fetch(url, job, to, *more)
    assert code == 0 and "seal OK" in output, output
    run = next(to.iterdir())
    return [json.loads(line)["id"] for line in (run / "checks.jsonl").read_text().splitlines()]


def test_a_worker_killed_mid_job_leaves_no_simulator_and_the_job_completes_once(
        redis_server: Redis, benches: dict[str, Worker], tmp_path: Path) -> None:
    url, worker = redis_server.url, benches["a"]
    job = _submit(url, "--bench", "a", *THREE_CHECKS)
    # Progress is published per check: killed after the first verdict, before the last.
    seen = wait_for(url, job, ("PROGRESS",), until=lambda info: 1 <= info.get("done", 0) < 3).info
    assert seen["total"] == 3 and seen["verdicts"].get("PASS", 0) >= 1
    worker.proc.send_signal(signal.SIGKILL)
    worker.proc.wait(timeout=10)
    _none_left(worker.work / job)  # certify and its simulators die with the worker
    deadline = time.monotonic() + 10 * TEST_LEASE_S
    while "STALLED — its worker stopped" not in (out := _fleet("status", job, "--broker", url)[1]):
        assert time.monotonic() < deadline, out  # not its last progress for ever: once its lease lapsed, stalled
        time.sleep(0.3)
    benches["a"] = worker.restart()  # the same host comes back
    result = wait_for(url, job)
    assert result.state == "SUCCESS", result.info
    assert result.info["resumed"] is True and result.info["done"] == 3
    ids = _one_verified_result(url, worker.store, job, tmp_path / "fetched")
    assert sorted(ids) == ["KZ-95-01", "KZ-95-09", "KZ-95-10"]  # one verdict set, each check once


def test_cancelling_a_running_job_stops_its_run_and_leaves_no_verdict(redis_server: Redis,
                                                                      benches: dict[str, Worker]) -> None:
    """`status --watch` follows the job live, through the cancel, and ends by itself once it has stopped."""
    url, worker = redis_server.url, benches["b"]
    job = _submit(url, "--bench", "b", *POWER_CUT)
    watch = subprocess.Popen([sys.executable, "-m", "harness", "fleet", "status", job, "--watch", "--interval", "0.3",
                              "--broker", url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(url, job, ("PROGRESS",), until=_in_power_cut)
        assert fleet_cli("cancel", job, "--broker", url) == 0
        cancelled = wait_for(url, job, ("CANCELLED",), timeout=30)
        out, err = watch.communicate(timeout=30)
    finally:
        if watch.poll() is None:
            watch.kill()
            watch.wait(timeout=10)
    assert watch.returncode == 0, err
    tables = out.strip().split("\n\n")
    assert any(" PROGRESS " in t and "0/1 KZ-95-10 on meter" in t for t in tables), out  # live: done/total, current
    assert " CANCELLED " in tables[-1] and "SUCCESS" not in out, out
    assert cancelled.info["done"] == 0  # stopped in its check
    _none_left(worker.work / job)  # certify and its simulators stopped
    assert not list(worker.store.glob(f"{job}*"))  # no result, so no verdict, stored
    assert not Registry(url).redis.hlen("unacked")  # acknowledged: never delivered again
    assert fleet_cli("cancel", job, "--broker", url) == 2  # finished: nothing left to cancel


def test_a_store_that_refuses_the_result_loses_nothing(redis_server: Redis, benches: dict[str, Worker],
                                                       tmp_path: Path) -> None:
    """The sealed run stays on the bench host, with what makes it the job's result once the store is back."""
    url, worker = redis_server.url, benches["b"]
    away = worker.store.with_name("store-away")
    worker.store.rename(away)
    worker.store.write_text("")  # a file where the store's folder was: nothing can be written into it
    try:
        job = _submit(url, "--bench", "b", *ONE_CHECK)
        result = wait_for(url, job)
    finally:
        worker.store.unlink()
        away.rename(worker.store)
    assert result.state == "FAILURE"
    message = str(result.result)
    assert "refused the result" in message and "\n" not in message, message
    job_dir = worker.work / job
    assert f"the sealed run stays in {job_dir}/" in message and f"from {job_dir} into the store" in message
    code, out, _ = _fleet("status", job, "--broker", url)
    assert code == 0 and "error: the result store" in out, out
    for name in (f"{job}.tar.gz", f"{job}.json"):  # as the message says: copied into the store, it is the result
        shutil.copy(job_dir / name, worker.store / name)
    ids = _one_verified_result(url, worker.store, job, tmp_path / "fetched", "--store", str(worker.store))
    assert ids == ["KZ-95-01"]


def test_a_local_matrix_needs_no_broker_and_a_miss_fails_it(tmp_path: Path) -> None:
    """--local: the same jobs on local processes; a golden device that is not golden is a MISS, exit 1."""
    broken = tmp_path / "broken-meter.yaml"  # the built-in rig, its meter seeded with a defect of its own
    rig = builtin_rig()
    text = rig.read_text().replace("../device_profiles/", f"{rig.parent.parent}/device_profiles/")
    broken.write_text(text.replace("    transport:", "    defects: [register_missing]\n    transport:", 1))
    res = run_cli("fleet", "matrix", str(broken), "--defects", "register_missing", "--local", "2", timeout=120)
    assert res.returncode == 1, res.stdout + res.stderr
    golden, defect = (line.split() for line in res.stdout.splitlines()[1:3])
    assert golden[1] == "golden" and golden[-1] == "MISS" and "FAIL" in golden, res.stdout
    assert defect[1] == "register_missing" and defect[-1] == "ok", res.stdout


def test_a_job_has_one_runner_a_live_one_keeps_it_and_a_late_one_gives_it_up(
        redis_server: Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    """The lease's cases a kill does not reach: a second delivery while the first run lives, a run that was
    silent too long, a holder that is a dead process of this host."""
    monkeypatch.setenv(LEASE_ENV, "0.6")
    registry = Registry(redis_server.url)
    first = JobLease(registry, "lease-job", "one@host")
    assert first.acquire() is None
    second = JobLease(registry, "lease-job", "two@host")
    try:
        assert second.acquire()["worker"] == "one@host"  # renewed all along: the first run keeps the job
    finally:
        first.release()  # silent from now on: its lease lapses
    assert second.acquire() is None  # taken once it lapsed
    try:
        assert not first.renew() and first.lost.is_set()  # back too late: it must not give a verdict
    finally:
        second.release()

    gone = subprocess.Popen(["true"])
    gone.wait()  # a process of this host that no longer exists held the lease (a worker killed with -9)
    registry.hold("lease-job-2", json.dumps({"host": fleet_host(), "pid": gone.pid, "worker": "dead@host"}), 60)
    third = JobLease(registry, "lease-job-2", "three@host")
    started = time.monotonic()
    try:
        assert third.acquire() is None and time.monotonic() - started < 5  # at once, not after 60 s
    finally:
        third.release()


def _one_line(code: int, out: str, err: str) -> str:
    """A user mistake: exit 2 and one line on stderr, no traceback."""
    assert code == 2 and len(err.strip().splitlines()) == 1, (code, out, err)
    return err


def test_bad_input_is_one_clear_line_and_nothing_is_lost(redis_server: Redis, tmp_path: Path) -> None:
    url = redis_server.url
    registry = Registry(url)
    before = set(registry.jobs())

    gone = run_cli("fleet", "submit", "--broker", "redis://127.0.0.1:1/0", *ONE_CHECK, timeout=60)  # as typed
    assert "cannot reach the broker redis://127.0.0.1:1/0" in _one_line(gone.returncode, gone.stdout, gone.stderr)
    for command in (["status"], ["worker", "--bench", "d", "--store", str(tmp_path / "s")], ["matrix"]):
        assert "cannot reach the broker" in _one_line(*_fleet(*command, "--broker", "redis://127.0.0.1:1/0"))
    assert "is not a Redis URL" in _one_line(*_fleet("status", "--broker", "http://127.0.0.1:1/"))

    text = builtin_rig().read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace("seed: ", "seed: not-a-number #", 1))
    line = 1 + next(i for i, row in enumerate(text.splitlines()) if "seed: " in row)
    assert f"{bad}:{line}: seed" in _one_line(*_fleet("submit", str(bad), "--broker", url))
    assert f"{bad}:{line}: seed" in _one_line(*_fleet("matrix", str(bad), "--broker", url))
    assert set(registry.jobs()) == before  # refused before anything was queued

    unwritable = tmp_path / "a-file"
    unwritable.write_text("")
    err = _one_line(*_fleet("worker", "--bench", "d", "--broker", url, "--store", str(unwritable / "store")))
    assert "is not writable" in err
    assert "d" not in registry.served()

    waiting = _submit(url, "--bench", "nobody", *ONE_CHECK)
    code, out, _ = _fleet("status", waiting, "--broker", url)
    assert code == 0 and "WAITING — no worker serves bench nobody" in out, out
    assert fleet_cli("cancel", waiting, "--broker", url) == 0 and registry.cancelled(waiting)
    code, out, _ = _fleet("status", waiting, "--broker", url)
    assert code == 0 and " CANCELLED" in out, out


def test_a_shared_job_whose_host_dies_restarts_on_another_host(redis_server: Redis, benches: dict[str, Worker],
                                                               tmp_path: Path) -> None:
    """Another host cannot see that a process died: it sees the job's lease lapse, puts the job back and runs it
    from the start in its own run root. (Last of the bench tests: the killed host stays down.)"""
    url = redis_server.url
    job = _submit(url, *POWER_CUT)  # all simulated: the shared queue, taken by either host
    seen = wait_for(url, job, ("PROGRESS",), until=_in_power_cut).info
    dead = benches[seen["bench"]]
    alive = benches["b" if dead.bench == "a" else "a"]
    dead.proc.send_signal(signal.SIGKILL)
    dead.proc.wait(timeout=10)
    _none_left(dead.work / job)
    result = wait_for(url, job)
    assert result.state == "SUCCESS", result.info
    assert result.info["worker"].startswith(f"{alive.bench}-simulated@host-{alive.bench}"), result.info
    assert result.info["resumed"] is False and result.info["done"] == 1  # restarted: no run folder there
    ids = _one_verified_result(url, alive.store, job, tmp_path / "fetched")
    assert ids == ["KZ-95-10"]  # one verdict set
    assert (dead.work / job).is_dir() and sweep(dead.work) == 1  # when it comes back, the dead host's start of it
    assert not (dead.work / job).exists()                        # goes: the job has ended elsewhere
