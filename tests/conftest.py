"""Shared fixtures for the harness's own tests: real simulator processes on loopback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from harness.config import load_rig
from harness.config.loading import LoadedRig
from harness.fault_injection.ports import free_port
from harness.resources import builtin_profile, builtin_rig
from harness.simulators.control import serve_control  # noqa: F401  (import proves the simulator side imports)

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
# The harness's own runs sign with a throwaway lab key, never the user's own (inherited by subprocesses).
os.environ["HARNESS_KEY_DIR"] = tempfile.mkdtemp(prefix="tek-harness-test-key-")
# Dozens of certify runs here are not about reports: skip their Allure HTML (~1.5 s each). The report
# tests (test_evidence, test_certify's golden run, test_allure_html) ask for it with allure_env().
os.environ["HARNESS_NO_ALLURE_REPORT"] = "1"


def _share_bytecode_cache() -> None:
    """Hundreds of `harness` processes start here (certify runs, simulators); with PYTHONDONTWRITEBYTECODE set
    (as on the developers' machines) each one compiled every harness module again and re-ran pytest's assertion
    rewrite over the suites: ~0.6 s CPU per certify run. Their bytecode goes to one cache outside the source tree
    instead (.pytest_cache/pycache, ignored by git), so nothing is written beside the sources either way. Set here,
    at import in the controller, it reaches the xdist workers and everything they start."""
    if "PYTHONPYCACHEPREFIX" in os.environ:
        return
    prefix = ROOT / ".pytest_cache" / "pycache"
    try:
        prefix.mkdir(parents=True, exist_ok=True)
    except OSError:
        return  # a read-only checkout: compile every time, as before
    os.environ["PYTHONPYCACHEPREFIX"] = str(prefix)
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)


_share_bytecode_cache()
# The simulated controllers keep OPC UA's standard nodes here instead of filling them at each start (~0.6 s CPU each;
# harness/simulators/controller/standard_space.py). Inherited by every certify run and simulator started below.
os.environ.setdefault("HARNESS_SIM_CACHE_DIR", str(ROOT / ".pytest_cache" / "simulators"))


def allure_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "HARNESS_NO_ALLURE_REPORT"}


@dataclass
class SimMeter:
    """A running simulated meter process, stopped by PID at teardown."""

    proc: subprocess.Popen[bytes]
    port: int
    control_port: int
    state_dir: Path
    profile: Path

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


def builtin_unlock_password() -> str:
    """The password of the built-in meter rig's write protection (rigs/sim-meter.yaml credentials.unlock)."""
    cred = load_rig(builtin_rig()).rig.duts["meter"].credentials["unlock"]
    assert cred.password is not None
    return cred.password


def start_sim(state_dir: Path, profile: Path | None = None, defects: str = "") -> SimMeter:
    """The meter simulator with the built-in rig's unlock password, as the built-in rig launches it."""
    port, control = free_port(), free_port()
    profile = profile or builtin_profile("tek-sim-em4.yaml")
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness", "sim", "meter", "--profile", str(profile), "--state-dir", str(state_dir),
         "--tcp", f"127.0.0.1:{port}", "--control", str(control), "--unlock-password", builtin_unlock_password(),
         "--defects", defects],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    return SimMeter(proc, port, control, state_dir, profile)


@pytest.fixture
def sim_meter(tmp_path: Path) -> Iterator[SimMeter]:
    sim = start_sim(tmp_path / "state")
    try:
        yield sim
    finally:
        sim.kill()


@pytest.fixture(scope="session")
def builtin_loaded_rig() -> LoadedRig:
    return load_rig(builtin_rig())


def start_cli(*args: str) -> subprocess.Popen[str]:
    """The `harness` command started, not waited for (the caller waits, and kills it by its PID if it must)."""
    return subprocess.Popen([sys.executable, "-m", "harness", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True)


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 300,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The `harness` command exactly as a user runs it."""
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, stdin=subprocess.DEVNULL, env=env)


# One sealed run read by several modules. A session fixture is made once per xdist worker: every module that uses
# it carries pytest.mark.xdist_group(REGISTERS_RUN_GROUP), so the run is made once and they share a worker.
REGISTERS_RUN_GROUP = "registers-run"


@pytest.fixture(scope="session")
def sealed_registers_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`harness certify --suite registers` of the built-in meter rig, sealed, with its Allure report: the evidence
    and custody tests read it and alter only copies of it."""
    out = tmp_path_factory.mktemp("sealed") / "run"
    res = run_cli("certify", "--out", str(out), "--suite", "registers", env=allure_env())
    assert res.returncode == 0, res.stdout + res.stderr
    assert "harness verify" in res.stdout
    return out


# The golden certifications of the built-in rigs, each made once and read by every test that only reads a run's
# results (verdicts, measurements, evidence files): a full certification is most of a minute of CPU. Each test that
# uses one carries its xdist group, so the run is made once, on one worker. Tests copy before they alter anything.
METER_GOLDEN_GROUP = "meter-golden"
CONTROLLER_GOLDEN_GROUP = "controller-golden"
VARIANT_GOLDEN_GROUP = "variant-golden"  # test_generic_profile, test_interval_data


@dataclass
class GoldenRun:
    """A finished `harness certify` of a built-in rig: where it wrote, and what it printed."""

    out: Path
    res: subprocess.CompletedProcess[str]

    def passed(self) -> None:
        assert self.res.returncode == 0, not_passed(self.out) + self.res.stdout + self.res.stderr

    def checks(self, *suites: str) -> dict[str, dict]:
        """checks.jsonl by check id, of these suites only: the records `harness certify --suite S…` would write."""
        return {k: r for k, r in checks_of(self.out).items() if r["suite"] in suites}

    def faults_during(self, checks: dict[str, dict]) -> list[dict]:
        """faults.jsonl entries made while these checks ran (one suite's checks run one after the other)."""
        started, finished = min(c["started"] for c in checks.values()), max(c["finished"] for c in checks.values())
        return [f for f in map(json.loads, (self.out / "faults.jsonl").read_text().splitlines())
                if started <= f["t"] <= finished]


@pytest.fixture(scope="session")
def meter_golden_run(tmp_path_factory: pytest.TempPathFactory) -> GoldenRun:
    """`harness certify` of the default meter rig, every check, with its Allure report."""
    out = tmp_path_factory.mktemp("meter-golden") / "out"
    return GoldenRun(out, run_cli("certify", "--out", str(out), env=allure_env()))


@pytest.fixture(scope="session")
def variant_golden_run(tmp_path_factory: pytest.TempPathFactory) -> GoldenRun:
    """`harness certify tests/data/variant-rig.yaml`, every check: the meter whose profile lays out its registers,
    windows and journal differently from the built-in one (the suites are generic, not tuned to our simulator)."""
    out = tmp_path_factory.mktemp("variant-golden") / "out"
    return GoldenRun(out, run_cli("certify", str(DATA / "variant-rig.yaml"), "--out", str(out)))


@pytest.fixture(scope="session")
def controller_golden_run(tmp_path_factory: pytest.TempPathFactory) -> GoldenRun:
    """`harness certify rigs/sim-controller.yaml --lang ru`, every check (the records stay English; issue 19)."""
    out = tmp_path_factory.mktemp("controller-golden") / "out"
    return GoldenRun(out, run_cli("certify", str(ROOT / "rigs" / "sim-controller.yaml"), "--out", str(out),
                                  "--lang", "ru"))


# ---- a run's evidence, as the tests read it ---------------------------------------------------------------------
def checks_of(out: Path) -> dict[str, dict]:
    """checks.jsonl of a run, by check id."""
    return {r["id"]: r for r in map(json.loads, (out / "checks.jsonl").read_text().splitlines())}


def not_passed(out: Path) -> str:
    """Each check of a run that is neither PASS nor N/A, with its reason, one line each — put first in an
    assertion message, so a flaky failure in CI says why even where the output is cut."""
    try:
        checks = checks_of(out)
    except OSError as exc:
        return f"(no checks.jsonl: {exc})\n"
    lines = [f"{r['id']} {r.get('dut', '')} {r['verdict']}: {r.get('reason', '')}"
             for r in checks.values() if r["verdict"] not in ("PASS", "N/A")]
    return "".join(line[:600] + "\n" for line in lines)


def verdicts_of(out: Path) -> dict:
    """verdicts.json of a run."""
    return json.loads((out / "verdicts.json").read_text())


@dataclass
class DefectRun:
    """`harness certify [RIG] --defect D --check ID --reruns 0`: what it printed and what it recorded."""

    res: subprocess.CompletedProcess[str]
    record: dict  # the expected check's record
    clause: dict  # the defect's clause in verdicts.json, for the DUT
    checks: dict[str, dict]


def certify_defect(tmp_path: Path, defect: Any, *, rig: str | Path | None = None, dut: str = "meter") -> DefectRun:
    """Seed ``defect`` (a catalogue Defect) into the rig's simulators and run only the check it names, once
    (a deterministic defect fails every attempt; re-runs would only cost time: test_flaky.py). Asserts what
    every such test needs: exit 1, and that check FAILed on the defect's clause."""
    out = tmp_path / "out"
    res = run_cli("certify", *([str(rig)] if rig else []), "--out", str(out), "--defect", defect.name,
                  "--check", defect.expect, "--reruns", "0")
    assert res.returncode == 1, res.stdout + res.stderr
    checks = checks_of(out)
    record = checks[defect.expect]
    assert record["verdict"] == "FAIL", (record["verdict"], record.get("reason"), record.get("measurements"))
    clause = verdicts_of(out)["duts"][dut]["clauses"][defect.clause]
    assert clause["verdict"] == "FAIL", clause
    return DefectRun(res, record, clause, checks)


class DefectBatch:
    """`harness certify` for several seeded defects: the rig with one simulated DUT per defect (named after it,
    tests/defect_rigs.py) and `--check DUT:ID` — each DUT runs only the check its defect must fail. Every DUT's
    verdicts stand alone, so ``run(defect)`` proves what certify_defect proves for one defect, without paying a
    harness start-up, a report and a seal per defect (~1 s CPU each).

    ``parts`` > 1 splits the defects over that many certify runs at once: a batch mostly waits (power cuts, device
    time, retention windows) and one run takes its DUTs one after the other, so a large batch would otherwise be
    the longest piece of the test session on one worker. ``golden`` check ids run, in the first part, on one more
    DUT: an unseeded copy named GOLDEN (tests/defect_rigs.py), for a test of the golden device that shares the run.
    ``shape(defect, dut)`` trims a defect's DUT to what its check needs. ``whole_suites``: defect -> a suite its DUT
    runs whole (every check of it, to show that nothing else of the suite fails with the defect) instead of only
    its own check."""

    def __init__(self, tmp_path: Path, defects: list[Any], rig: Path, parts: int = 1,
                 shape: Callable[[str, dict], None] | None = None, golden: tuple[str, ...] = (),
                 whole_suites: dict[str, str] | None = None) -> None:
        from tests.defect_rigs import GOLDEN, rig_per_defect, suite_check_ids

        whole = {d: suite_check_ids(suite) for d, suite in (whole_suites or {}).items()}
        assert all(d.expect in whole[d.name] for d in defects if d.name in whole), "a defect outside its suite"
        groups = [g for g in (defects[i::max(1, parts)] for i in range(max(1, parts))) if g]
        started: list[tuple[Path, list[Any], subprocess.Popen[str]]] = []
        try:
            for i, group in enumerate(groups):
                out = tmp_path / ("out" if len(groups) == 1 else f"out-{i + 1}")
                batch_rig = rig_per_defect(rig, [d.name for d in group], tmp_path / f"batch-{i + 1}-{rig.name}",
                                           shape, golden=bool(golden) and i == 0)
                checks = [a for d in group for check in whole.get(d.name, [d.expect])
                          for a in ("--check", f"{d.name}:{check}")]
                checks += [a for check in golden if i == 0 for a in ("--check", f"{GOLDEN}:{check}")]
                started.append((out, group, start_cli("certify", str(batch_rig), "--out", str(out), "--reruns", "0",
                                                      *checks)))
            self._runs: dict[str, tuple[Path, subprocess.CompletedProcess[str]]] = {}
            for out, group, proc in started:
                stdout, stderr = proc.communicate(timeout=300)
                res = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
                self._runs.update((d.name, (out, res)) for d in group)
        finally:
            for _out, _group, proc in started:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait(timeout=30)
        self.outs = [out for out, _group, _proc in started]
        self.out, self.res = self._runs[defects[0].name]  # the first part's (the only one unless split)
        self.defects = {d.name for d in defects}

    def golden(self) -> dict[str, dict]:
        """The golden DUT's records by check id (it runs in the first part, ``out``)."""
        from tests.defect_rigs import GOLDEN

        return {r["id"]: r for r in map(json.loads, (self.out / "checks.jsonl").read_text().splitlines())
                if r["dut"] == GOLDEN}

    def part(self, name: str) -> tuple[Path, subprocess.CompletedProcess[str]]:
        """(OUT, finished certify) of the run that took the DUT of defect ``name``."""
        return self._runs[name]

    def records(self, names: Iterable[str]) -> list[dict]:
        """checks.jsonl records of the DUTs of these defects, from whichever run took each."""
        wanted = set(names)
        outs = {self._runs[n][0] for n in wanted}
        return [r for out in sorted(outs) for r in map(json.loads, (out / "checks.jsonl").read_text().splitlines())
                if r["dut"] in wanted]

    def run(self, defect: Any) -> DefectRun:
        """certify_defect's assertions for the DUT that carries ``defect``: its batch exits 1, and that DUT's check
        FAILed on the defect's clause, as its line on the console says."""
        assert defect.name in self.defects, f"{defect.name} is not in this batch"
        out, res = self._runs[defect.name]
        assert res.returncode == 1, res.stdout + res.stderr
        checks = {r["id"]: r for r in map(json.loads, (out / "checks.jsonl").read_text().splitlines())
                  if r["dut"] == defect.name}
        record = checks[defect.expect]
        assert record["verdict"] == "FAIL", (record["verdict"], record.get("reason"), record.get("measurements"))
        clause = verdicts_of(out)["duts"][defect.name]["clauses"][defect.clause]
        assert clause["verdict"] == "FAIL", clause
        assert any(defect.expect in line and " FAIL " in line and f" {defect.name} " in line  # its progress line
                   for line in res.stdout.splitlines()), res.stdout
        return DefectRun(res, record, clause, checks)


def _batch_for(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, catalogue: dict[str, Any],
               rig: Path, shape: Callable[[str, dict], None] | None = None) -> DefectBatch:
    """The batch of every defect that a selected test using this fixture takes as its ``defect`` parameter (so `-k`
    on one test runs only its defect), and of those a selected test names in its `whole_suite` marker."""
    fixture = request.fixturename
    users = [item for item in request.session.items if fixture in getattr(item, "fixturenames", ())]
    whole = {d: mark.args[0] for item in users for mark in item.iter_markers(WHOLE_SUITE_MARK) for d in mark.args[1]}
    names = sorted({item.callspec.params["defect"] for item in users
                    if hasattr(item, "callspec") and "defect" in item.callspec.params} | set(whole))
    parts = 1 if len(names) < 8 else 2 if len(names) < 20 else 3  # each part: a harness start-up, a report, a seal
    return DefectBatch(tmp_path_factory.mktemp(fixture), [catalogue[n] for n in names], rig, parts, shape,
                       whole_suites=whole)


# Batches of seeded defects shared by the modules that prove them: their tests carry the batch's xdist group, so a
# batch is made once, on one worker. The built-in meter's: test_certify, test_journal, test_interval_data.
METER_DEFECTS_GROUP = "meter-defects"
HEAT_DEFECTS_GROUP = "heat-defects"
CONCENTRATOR_DEFECTS_GROUP = "concentrator-defects"
CONTROLLER_DEFECTS_GROUP = "controller-defects"  # test_access_control_opcua, test_controller_journal
DLMS_DEFECTS_GROUP = "dlms-defects"  # the TCP DLMS rig's: test_dlms, test_dlms_profiles
DLMS_HDLC_DEFECTS_GROUP = "dlms-hdlc-defects"  # the HDLC rig's (a pty pair per DUT): test_dlms_hdlc
# @pytest.mark.whole_suite(SUITE, [defects]) on a test that uses a batch: those defects' DUTs run all of SUITE in it.
WHOLE_SUITE_MARK = "whole_suite"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{WHOLE_SUITE_MARK}(suite, defects): in the test's defect batch, these "
                            "defects' DUTs run every check of the suite, not only their own")


@pytest.fixture(scope="session")
def meter_defects(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> DefectBatch:
    from harness.simulators.defects import METER_DEFECTS

    return _batch_for(request, tmp_path_factory, METER_DEFECTS, builtin_rig())


@pytest.fixture(scope="session")
def heat_defects(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> DefectBatch:
    from harness.simulators.defects import HEAT_DEFECTS

    return _batch_for(request, tmp_path_factory, HEAT_DEFECTS, builtin_rig("sim-heat-meter.yaml"))


@pytest.fixture(scope="session")
def concentrator_defects(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> DefectBatch:
    from harness.simulators.defects import CONCENTRATOR_DEFECTS

    return _batch_for(request, tmp_path_factory, CONCENTRATOR_DEFECTS, builtin_rig("sim-concentrator.yaml"))


@pytest.fixture(scope="session")
def controller_defects(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> DefectBatch:
    from harness.simulators.defects import CONTROLLER_DEFECTS

    return _batch_for(request, tmp_path_factory, CONTROLLER_DEFECTS, builtin_rig("sim-controller.yaml"))


@pytest.fixture(scope="session")
def dlms_defects(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> DefectBatch:
    from harness.simulators.dlms_meter.defects import DLMS_METER_DEFECTS

    return _batch_for(request, tmp_path_factory, DLMS_METER_DEFECTS, builtin_rig("sim-dlms-meter.yaml"))


@pytest.fixture(scope="session")
def dlms_hdlc_defects(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> DefectBatch:
    from harness.simulators.dlms_meter.defects import DLMS_METER_DEFECTS

    return _batch_for(request, tmp_path_factory, DLMS_METER_DEFECTS, builtin_rig("sim-dlms-meter-hdlc.yaml"))


# ---- scheduling on the xdist workers ------------------------------------------------------------------------------
def _groups_of(item: pytest.Item) -> set[str]:
    return {str(m.args[0] if m.args else m.kwargs.get("name", "default")) for m in item.iter_markers("xdist_group")}


def _start_order(item: pytest.Item, slow_groups: set[str]) -> int:
    """Long tests (`slow`) first, with each `xdist_group` that holds one (a group shares one simulator or run among
    its tests and so runs on one worker, in one piece: a golden certification read by a dozen tests is the longest
    unit of the run), then the other groups, then the rest: with --dist loadgroup a worker takes the next unit when
    it runs short, so the run ends on short tests instead of one worker finishing a 60 s certification alone."""
    groups = _groups_of(item)
    if item.get_closest_marker("slow") or groups & slow_groups:
        return 0
    return 1 if groups else 2


def _keep_xdist_groups(items: list[pytest.Item]) -> None:
    """pytest-xdist 3.8 puts a test in its group by appending "@group" to ``item._nodeid``; pytest 9.2 keeps the id
    in ``item._id``, so the suffix was lost and --dist loadgroup spread every group over the workers (each making
    the module's simulators again). The same suffix, where this pytest keeps it; a no-op once xdist does it."""
    try:
        from _pytest.nodes import coerce_node_id
    except ImportError:  # a pytest before 9.2: xdist's own suffix works there
        return
    for item in items:
        names = sorted(_groups_of(item))
        if names and "@" not in item.nodeid.rpartition("]")[2] and hasattr(item, "_id"):
            item._id = coerce_node_id(f"{item.nodeid}@{'_'.join(names)}")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    slow_groups = {g for item in items if item.get_closest_marker("slow") for g in _groups_of(item)}
    items.sort(key=lambda item: _start_order(item, slow_groups))  # stable: collection order within each kind
    if getattr(config.option, "loadgroup", False):  # set on xdist workers under --dist loadgroup only
        _keep_xdist_groups(items)
