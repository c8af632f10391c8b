"""Fleet (issue 17): jobs on Celery + a real Redis, routed to benches, crash-safe, fetched with a verified seal."""

from __future__ import annotations

import base64
import gzip
import io
import json
import shutil
import signal
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.cli import main as harness_cli
from harness.config import load_rig
from harness.fleet.client import prepare
from harness.fleet.errors import FleetError
from harness.fleet.job import JobError, pack, unpack
from harness.fleet.state import Registry
from harness.fleet.store import DirectoryStore, StoreError, open_store
from harness.hookspecs import ResultStoreSpec, hookimpl
from harness.registry import plugin_manager
from harness.resources import builtin_rig
from tests.conftest import run_cli
from tests.fleet_fixtures import Redis, Worker, processes_naming, redis_server, start_worker, wait_for

__all__ = ["redis_server"]  # the fixture, imported so pytest finds it here

ONE_CHECK = ["--check", "KZ-95-01"]
# KZ-95-10 cuts the power for a second: a window of seconds to kill the worker in, mid-job.
THREE_CHECKS = ["--check", "KZ-95-01", "--check", "KZ-95-10", "--check", "KZ-95-09"]


def _submit(url: str, *args: str) -> str:
    res = run_cli("fleet", "submit", "--broker", url, *args, timeout=60)
    assert res.returncode == 0, res.stderr
    return res.stdout.strip()


def fleet_cli(*args: str) -> int:
    """`harness fleet ARGS` in this process (the quick commands; jobs and workers run as real processes)."""
    return harness_cli(["fleet", *args])


def _fetch(url: str, job: str, to: Path) -> tuple[int, str]:
    res = run_cli("fleet", "fetch", job, "--to", str(to), "--broker", url, timeout=60)
    return res.returncode, res.stdout + res.stderr


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


@pytest.fixture(scope="module")
def benches(redis_server: Redis, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Worker]]:
    """Two benches on this machine, a and b, each also taking one simulated job at a time."""
    tmp_path = tmp_path_factory.mktemp("benches")
    workers: dict[str, Worker] = {}
    try:
        for bench in ("a", "b"):
            workers[bench] = start_worker(redis_server.url, bench, tmp_path / "store", tmp_path / f"work-{bench}",
                                          tmp_path / f"worker-{bench}.log", simulated=1)
        yield workers
    finally:
        for worker in workers.values():
            worker.stop()


def test_jobs_run_on_their_bench_and_a_matrix_on_the_shared_queue(redis_server: Redis, benches: dict[str, Worker],
                                                                  tmp_path: Path) -> None:
    url = redis_server.url
    jobs = {"a": _submit(url, "--bench", "a", *ONE_CHECK), "b": _submit(url, "--bench", "b", *ONE_CHECK)}
    # Built-in simulated rigs golden and with a seeded defect each, through the fleet's shared queue.
    matrix = run_cli("fleet", "matrix", str(builtin_rig()), str(builtin_rig("sim-heat-meter.yaml")), "--defects",
                     "register_missing,heat_mass_not_recorded", "--broker", url, "--timeout", "150", timeout=200)
    assert matrix.returncode == 0, matrix.stdout + matrix.stderr
    assert "4/4 as expected" in matrix.stdout and "FAIL KZ-96-01" in matrix.stdout, matrix.stdout
    results = {name: wait_for(url, job) for name, job in jobs.items()}
    assert {n: r.state for n, r in results.items()} == dict.fromkeys(jobs, "SUCCESS"), \
        {n: r.info for n, r in results.items()}
    assert results["a"].info["worker"].startswith("a@")  # a bench's job only on its bench's own worker
    assert results["b"].info["worker"].startswith("b@")
    assert all(r.info["verdict"] == "PASS" and r.info["verdicts"] == {"PASS": 1} for r in results.values())

    status = run_cli("fleet", "status", "--broker", url)
    rows = [line for line in status.stdout.splitlines()[1:] if line.strip()]
    assert len(rows) == 6 and all("SUCCESS" in row for row in rows), status.stdout
    assert sum("(shared) a" in row or "(shared) b" in row for row in rows) == 4  # ran on a -simulated worker

    code, output = _fetch(url, jobs["a"], tmp_path / "fetched")
    assert code == 0, output
    assert "seal OK" in output
    run = next((tmp_path / "fetched").iterdir())
    assert [json.loads(line)["id"] for line in (run / "checks.jsonl").read_text().splitlines()] == ["KZ-95-01"]
    assert run_cli("verify", str(run)).returncode == 0

    # One worker per bench: a second one for bench a is refused while the first lives.
    second = run_cli("fleet", "worker", "--bench", "a", "--broker", url, "--store", str(tmp_path / "s2"), timeout=60)
    assert second.returncode == 2 and "bench 'a' is already served by" in second.stderr, second.stderr

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


def test_a_worker_killed_mid_job_leaves_no_simulator_and_the_job_completes_once(
        redis_server: Redis, benches: dict[str, Worker], tmp_path: Path) -> None:
    url, worker = redis_server.url, benches["a"]
    job = _submit(url, "--bench", "a", *THREE_CHECKS)
    # Progress is published per check: killed after the first verdict, before the last.
    seen = wait_for(url, job, ("PROGRESS",), until=lambda info: 1 <= info.get("done", 0) < 3).info
    assert seen["total"] == 3 and seen["verdicts"].get("PASS", 0) >= 1
    worker.proc.send_signal(signal.SIGKILL)
    worker.proc.wait(timeout=10)
    deadline = time.monotonic() + 10
    while processes_naming(str(worker.work / job)):  # certify and its simulators die with the worker
        assert time.monotonic() < deadline, processes_naming(str(worker.work / job))
        time.sleep(0.1)
    benches["a"] = worker.restart()  # the same host comes back
    result = wait_for(url, job)
    assert result.state == "SUCCESS", result.info
    assert result.info["resumed"] is True and result.info["done"] == 3
    assert sorted(p.name for p in worker.store.glob(f"{job}*")) == [f"{job}.json", f"{job}.tar.gz"]  # one result
    code, output = _fetch(url, job, tmp_path / "fetched")
    assert code == 0, output
    run = next((tmp_path / "fetched").iterdir())
    ids = [json.loads(line)["id"] for line in (run / "checks.jsonl").read_text().splitlines()]
    assert sorted(ids) == ["KZ-95-01", "KZ-95-09", "KZ-95-10"]  # one verdict set, each check once


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


def test_bad_input_is_one_clear_line_and_nothing_is_lost(redis_server: Redis, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    url = redis_server.url
    registry = Registry(url)
    before = set(registry.jobs())

    gone = run_cli("fleet", "submit", "--broker", "redis://127.0.0.1:1/0", *ONE_CHECK, timeout=60)
    assert gone.returncode == 2 and "cannot reach the broker redis://127.0.0.1:1/0" in gone.stderr, gone.stderr
    assert "Traceback" not in gone.stderr

    bad = tmp_path / "bad.yaml"
    bad.write_text(builtin_rig().read_text().replace("seed: ", "seed: not-a-number #", 1))
    refused = run_cli("fleet", "submit", str(bad), "--broker", url, timeout=60)
    assert refused.returncode == 2 and f"{bad}:" in refused.stderr and "seed" in refused.stderr, refused.stderr
    assert set(registry.jobs()) == before  # refused before anything was queued

    unwritable = tmp_path / "a-file"
    unwritable.write_text("")
    worker = run_cli("fleet", "worker", "--bench", "d", "--broker", url, "--store", str(unwritable / "store"),
                     timeout=60)
    assert worker.returncode == 2 and "is not writable" in worker.stderr, worker.stderr
    assert "d" not in registry.served()

    waiting = _submit(url, "--bench", "nobody", *ONE_CHECK)
    assert fleet_cli("status", waiting, "--broker", url) == 0
    assert "no worker serves bench nobody" in capsys.readouterr().out
    assert fleet_cli("cancel", waiting, "--broker", url) == 0 and registry.cancelled(waiting)
    assert fleet_cli("status", waiting, "--broker", url) == 0
    assert "CANCELLED" in capsys.readouterr().out
