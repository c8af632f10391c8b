"""The pytest plugin: wires a rig into a pytest session (`harness certify` == pytest + this + a rig).

Inert unless ``--rig`` is given, so the harness's own tests and anyone else's pytest runs are
untouched. With a rig it parametrizes every check over the DUTs of the kinds the suite applies
to, hands each check a ``dut`` and a ``check`` fixture, and writes one record per check to
checks.jsonl the moment the check finishes (plus Allure labels and attachments), and
verdicts.json at the end.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from harness.reporting import allure_labels, outcome
from harness.reporting.clauses import clause_of_check
from harness.reporting.progress import Progress
from harness.reporting.records import Attempt, Check, CheckRecord, read_records
from harness.reporting.texts import Msg
from harness.verdicts import Verdict

STATE = pytest.StashKey["HarnessRun"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("harness", "tek-harness certification")
    g.addoption("--rig", type=Path, help="rig YAML: run the conformance suites against its DUTs")
    g.addoption("--harness-out", type=Path, help="where checks.jsonl, verdicts.json, transcript go")
    g.addoption("--harness-suite", action="append", default=[], help="run only these suites")
    g.addoption("--harness-check", action="append", default=[],
                help="run only these check ids; DUT:ID runs the check on that DUT only")
    g.addoption("--harness-defect", action="append", default=[], help="seed defects into simulated DUTs")
    g.addoption("--harness-no-transcript", action="store_true", help="do not record device exchanges")
    g.addoption("--harness-quiet", action="store_true", help="no per-check lines (certify prints its own)")
    g.addoption("--harness-resume", action="store_true",
                help="keep the checks already in checks.jsonl and run only the rest")
    g.addoption("--harness-reruns", type=int, default=None,
                help="re-runs of a failing check (default: the rig's `reruns`)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "check(id, title, also=()): a conformance check with a stable KZ id")
    config.addinivalue_line("markers", "dut_kind(*kinds): device kinds a suite applies to")
    config.addinivalue_line("markers", "destructive: needs the rig's allow_destructive (power cuts …)")
    config.addinivalue_line("markers", "documentary: the check judges declared evidence, not a measurement")
    config.addinivalue_line("markers", "passive(unless=()): the check only observes the DUT and changes nothing "
                            "on it, so it may overlap other passive checks (harness/overlap.py); unless: the rig "
                            "conditions under which it does change something")
    rig_path = config.getoption("--rig")
    if rig_path is None:
        return
    from harness.config import ConfigError, load_rig

    try:
        loaded = load_rig(rig_path)
    except ConfigError as exc:
        raise pytest.UsageError(f"invalid rig:\n{exc}") from None
    from harness.reporting.outdir import default_out

    out = config.getoption("--harness-out") or default_out(loaded.rig.name)
    config.stash[STATE] = HarnessRun(config, loaded, out)


class HarnessRun:
    """Per-session state: the bench, the records, what was deselected."""

    def __init__(self, config: pytest.Config, loaded: Any, out: Path) -> None:
        from harness.bench import Bench

        self.config = config
        self.loaded = loaded
        self.out = out
        out.mkdir(parents=True, exist_ok=True)
        self.checks_path = out / "checks.jsonl"
        self.bench = Bench(loaded, out, config.getoption("--harness-defect"),
                           transcript=not config.getoption("--harness-no-transcript"))
        self.deselected: dict[str, list[tuple[str, list[str]]]] = {}
        reruns = config.getoption("--harness-reruns")
        self.reruns: int = loaded.rig.reruns if reruns is None else max(0, reruns)
        self.quiet = config.getoption("--harness-quiet")
        self.selected: list[tuple[str, str, list[str]]] = []  # (dut, check id, clauses) meant to run
        self.progress = Progress(0)
        # A resumed run starts from what the killed one finished; the rest of the state is rebuilt.
        self.records: list[CheckRecord] = read_records(self.checks_path) if config.getoption("--harness-resume") \
            else []
        self.started = _run_started(out)
        self.duts_path = out / "duts.json"
        self.known_duts: dict[str, Any] = (json.loads(self.duts_path.read_text(encoding="utf-8"))
                                           if self.records and self.duts_path.exists() else {})

    def emit(self, record: CheckRecord) -> None:
        self.records.append(record)
        with self.checks_path.open("a", encoding="utf-8") as f:
            f.write(record.model_dump_json() + "\n")
            f.flush()
            os.fsync(f.fileno())  # a check boundary: the record and every exchange behind it survive the host's
        if self.bench.transcript is not None:  # power loss, not only a killed harness (issue 18)
            self.bench.transcript.sync()
        self._keep_duts()
        if not self.quiet:
            capture = self.config.pluginmanager.get_plugin("capturemanager")
            with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
                self.progress.finished(record)

    def _keep_duts(self) -> None:
        """DUT identities as soon as known: a resumed run may never start a DUT whose checks are done."""
        duts = {**self.known_duts, **self.dut_info()}
        if duts != self.known_duts:
            self.known_duts = duts
            tmp = self.duts_path.with_suffix(".tmp")
            tmp.write_text(json.dumps(duts, indent=2, ensure_ascii=False), encoding="utf-8")
            tmp.replace(self.duts_path)

    def dut_info(self) -> dict[str, Any]:
        duts: dict[str, Any] = {}
        for name, rt in self.bench.runtimes.items():
            ident = rt.identity
            duts[name] = {
                "vendor": rt.profile.vendor, "model": rt.profile.model, "kind": rt.profile.kind.value,
                "profile": str(rt.profile_path), "profile_sha256": self.loaded.profile_hash(name),
                "serial_number": ident.serial_number if ident else None,
                "firmware_version": ident.firmware_version if ident else None,
                "defects": rt.defects,
            }
        return duts

    def write_verdicts(self) -> dict[str, Any]:
        from harness import __version__
        from harness.reporting.aggregate import aggregate

        duts = {**self.known_duts, **self.dut_info()}
        # A check that was meant to run but left no record (interrupted run) counts as not run.
        done = {(r.dut, r.id) for r in self.records}
        not_run = {dut: list(checks) for dut, checks in self.deselected.items()}
        missing = [(dut, check_id, clauses) for dut, check_id, clauses in self.selected if (dut, check_id) not in done]
        for dut, check_id, clauses in missing:
            not_run.setdefault(dut, []).append((check_id, clauses))
        verdicts = aggregate(self.records, not_run, duts)
        verdicts["interrupted"] = bool(missing)
        verdicts = {"harness_version": __version__, "rig": self.loaded.rig.name, "rig_file": str(self.loaded.path),
                    "started": _iso(self.started), "finished": _iso(time.time()), **verdicts}
        path = self.out / "verdicts.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(verdicts, indent=2, ensure_ascii=False), encoding="utf-8")
        tmp.replace(path)
        return verdicts


def _run_started(out: Path) -> float:
    """A resumed run keeps the start time of the run it completes (run.json, written by certify)."""
    try:
        return float(json.loads((out / "run.json").read_text(encoding="utf-8"))["started"])
    except (OSError, ValueError, KeyError, TypeError):
        return time.time()


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def _run(config: pytest.Config) -> HarnessRun | None:
    return config.stash.get(STATE, None)


# ---- collection ---------------------------------------------------------------------------------
def _check_marker(item: pytest.Item) -> tuple[str, str, list[str]] | None:
    mark = item.get_closest_marker("check")
    if mark is None:
        return None
    check_id, title = mark.args[0], mark.args[1]
    clauses = [clause_of_check(check_id), *mark.kwargs.get("also", ())]
    return check_id, title, clauses


def _suite_of(item: pytest.Item) -> str:
    return Path(str(item.path)).parent.name


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    run = _run(metafunc.config)
    if run is None or "dut" not in metafunc.fixturenames:
        return
    kinds = {k for m in metafunc.definition.iter_markers("dut_kind") for k in m.args}
    names = [n for n, p in run.loaded.profiles.items() if not kinds or p.kind.value in kinds]
    metafunc.parametrize("dut", names, indirect=True, ids=names)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    run = _run(config)
    if run is None:
        return
    suites = set(config.getoption("--harness-suite"))
    only = _check_selection(config.getoption("--harness-check"), items, run)
    keep, drop = [], []
    done = {(r.dut, r.id) for r in run.records}
    for item in items:
        marker = _check_marker(item)
        if marker is None:
            keep.append(item)
            continue
        dut = item.callspec.params.get("dut", "") if hasattr(item, "callspec") else ""
        if not isinstance(dut, str):  # empty parameter set: no DUT of the check's kinds on this rig
            drop.append(item)  # it does not apply here, so it is not "not run" either
            continue
        if (dut, marker[0]) in done:  # finished before a resume: its record stands
            drop.append(item)
            continue
        unselected = only and not only & {marker[0], (dut, marker[0])}
        excluded = (suites and _suite_of(item) not in suites) or unselected or (
            item.get_closest_marker("destructive") and not run.loaded.rig.allow_destructive)
        if excluded:
            drop.append(item)
            run.deselected.setdefault(dut, []).append((marker[0], marker[2]))
        else:
            keep.append(item)
    # Checks that share a DUT run suite by suite, in id order: evidence reads like the Rules …
    keep.sort(key=lambda it: (_check_marker(it) or ("~",))[0])
    _arrange_overlaps(keep, run)  # … except that a DUT's passive checks run together, as one group
    if drop:
        config.hook.pytest_deselected(items=drop)
    items[:] = keep
    run.selected = [(it.callspec.params.get("dut", "") if hasattr(it, "callspec") else "", *m[::2])
                    for it in keep if (m := _check_marker(it))]
    run.progress = Progress(len(run.selected) + len(done), done=len(done))


def _check_selection(asked: list[str], items: list[pytest.Item], run: HarnessRun) -> set[str | tuple[str, str]]:
    """--check values as selected (check id) or (DUT, check id) — DUT:ID runs a check on one DUT of the rig, e.g.
    to repeat it there, or to run each DUT's own check in one run (one seeded defect per DUT)."""
    known = {m[0] for m in map(_check_marker, items) if m}
    only: set[str | tuple[str, str]] = set()
    for value in asked:
        dut, _sep, check_id = value.rpartition(":")
        if dut and dut not in run.loaded.rig.duts:
            raise pytest.UsageError(f"--check {value}: no DUT {dut!r} in the rig; DUTs: "
                                    f"{', '.join(run.loaded.rig.duts)}")
        only.add((dut, check_id) if dut else check_id)
    unknown = {item if isinstance(item, str) else item[1] for item in only} - known
    if unknown:
        raise pytest.UsageError(f"unknown check id(s) {', '.join(sorted(unknown))}; known: "
                                f"{', '.join(sorted(known))}")
    return only


def _dut_of(item: pytest.Item) -> str:
    dut = item.callspec.params.get("dut", "") if hasattr(item, "callspec") else ""
    return dut if isinstance(dut, str) else ""


def _arrange_overlaps(items: list[pytest.Item], run: HarnessRun) -> None:
    from harness import overlap

    for item in items:
        mark = item.get_closest_marker(overlap.MARKER)
        if mark is not None and overlap.unknown_conditions(mark):
            raise pytest.UsageError(f"{item.nodeid}: unknown passive(unless=…) condition(s) "
                                    f"{', '.join(overlap.unknown_conditions(mark))}; known: "
                                    f"{', '.join(overlap.CONDITIONS)}")
    for group in overlap.arrange(items, run.loaded.rig, _dut_of):
        for item in group:
            item.stash[_GROUP] = group
        if not run.quiet:  # said once, so that a reader of the log knows why their times overlap
            ids = ", ".join(m[0] for m in map(_check_marker, group) if m)
            capture = run.config.pluginmanager.get_plugin("capturemanager")
            with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
                sys.stdout.write(f"  passive checks that run at the same time on {_dut_of(group[0])}: {ids}\n")
                sys.stdout.flush()


# ---- fixtures -----------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def harness_run(request: pytest.FixtureRequest) -> HarnessRun:
    run = _run(request.config)
    if run is None:
        raise pytest.UsageError("conformance checks need a rig: pytest --rig RIG.yaml (or `harness certify`)")
    return run


@pytest.fixture
def dut(request: pytest.FixtureRequest, harness_run: HarnessRun) -> Any:
    """The DUT's runtime: ``.device`` (Device API), ``.profile``, ``.power``, ``.time``, ``.spec``."""
    return harness_run.bench.dut(request.param)


@pytest.fixture
def check(request: pytest.FixtureRequest) -> Check:
    marker = _check_marker(request.node)
    if marker is None:
        raise pytest.UsageError(f"{request.node.nodeid}: the check fixture needs @pytest.mark.check(id, title)")
    c = request.node.stash.get(_CHECK, None)  # an overlapped check's was made when its group started
    if c is None:
        c = _new_check(request.node, marker)
    allure_labels.label(c)
    return c


def _new_check(item: pytest.Item, marker: tuple[str, str, list[str]]) -> Check:
    check_id, title, clauses = marker
    c = Check(check_id, title, _suite_of(item), clauses, _dut_of(item))
    item.stash[_CHECK] = c
    return c


_CHECK = pytest.StashKey[Check]()
_STARTED = pytest.StashKey[float]()
_RECORD = pytest.StashKey[CheckRecord]()
_ATTEMPTS = pytest.StashKey[list[Attempt]]()
_GROUP = pytest.StashKey[list[pytest.Item]]()  # the passive checks of one DUT that run at the same time
_RUNNING = pytest.StashKey[Any]()  # harness.overlap.Running: an overlapped check's thread


def pytest_runtest_setup(item: pytest.Item) -> None:
    if _RUNNING not in item.stash:  # an overlapped check started with its group: its thread keeps the time
        item.stash[_STARTED] = time.time()
    run, marker = _run(item.config), _check_marker(item)
    if run is not None and marker is not None and not run.quiet:
        dut = item.callspec.params.get("dut", "") if hasattr(item, "callspec") else ""
        capture = item.config.pluginmanager.get_plugin("capturemanager")
        with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
            run.progress.started(_suite_of(item), marker[0], dut)


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run a check, and re-run it after a FAIL up to the rig's ``reruns`` times.

    A check that fails and then passes is FLAKY — reported, and INCONCLUSIVE for the clause, never
    PASS. Only FAILs are re-run: an INCONCLUSIVE or N/A would answer the same again. The check's
    measurements start afresh each time; every earlier attempt is kept in the record. A check of a passive
    group (harness/overlap.py) does the same in its own thread, beside the others of its group.
    """
    run, c = _run(pyfuncitem.config), pyfuncitem.stash.get(_CHECK, None)
    if run is not None and c is not None and _GROUP in pyfuncitem.stash:
        return _overlapped_call(pyfuncitem, run)
    if run is None or c is None or run.reruns == 0 or pyfuncitem.get_closest_marker("documentary"):
        return None  # declared papers read the same on every attempt
    args = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    _attempts(pyfuncitem, args, c, run.reruns)
    return True


def _attempts(item: pytest.Item, args: dict[str, Any], c: Check, reruns: int) -> None:
    """The check's body, re-run after a FAIL up to ``reruns`` times (each attempt kept in item.stash)."""
    from harness.devices.api import DeviceError

    attempts: list[Attempt] = []
    item.stash[_ATTEMPTS] = attempts
    for attempt in range(reruns + 1):
        try:
            item.obj(**args)
            if not c.failures:
                return
            reason: str = outcome.failures_text(c)
        except (AssertionError, DeviceError) as exc:
            if attempt == reruns:
                raise
            reason = outcome.exc_text(exc)
        if attempt == reruns:
            return  # the failed measurements make the verdict FAIL
        attempts.append(Attempt(verdict=Verdict.FAIL, reason=reason, texts=outcome.texts(reason)))
        c.restart()


def _overlapped_call(item: pytest.Function, run: HarnessRun) -> bool:
    """A check of a passive group: the group's first check starts them all, each in its own thread with its
    own connection to the DUT; each then waits for its own to end and reports it in its own call phase, so
    its record, attempts, verdict and progress line are its own."""
    if _RUNNING not in item.stash:  # the first of its group to be called (one before it may not have set up)
        group = item.stash[_GROUP]
        for member in group[group.index(item):]:
            _start_overlapped(member, run, item)
    item.stash[_RUNNING].wait()
    return True


def _start_overlapped(item: pytest.Item, run: HarnessRun, leader: pytest.Item) -> None:
    from harness import overlap

    marker = _check_marker(item)
    assert marker is not None  # only checks are grouped
    c = item.stash.get(_CHECK, None) or _new_check(item, marker)
    dut = overlap.OwnConnection(run.bench.dut(_dut_of(item)), f"overlap-{marker[0]}")
    given = {"dut": dut, "check": c, "harness_run": run}
    args = {name: given[name] for name in item._fixtureinfo.argnames}  # type: ignore[attr-defined]
    if item is not leader:  # the leader's time is its setup's, as for any check
        item.stash[_STARTED] = time.time()
    item.stash[_RUNNING] = overlap.start(lambda: _attempts(item, args, c, run.reruns), marker[0],
                                         cleanup=[dut.close])


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_runtest_call(item: pytest.Item) -> Any:
    c = item.stash.get(_CHECK, None)
    if c is not None:
        allure_labels.title(c)
    try:
        return (yield)
    finally:
        c = item.stash.get(_CHECK, None)
        if c is not None and c.measurements:
            try:
                import allure

                allure.attach(json.dumps([m.model_dump() for m in c.measurements], indent=2, ensure_ascii=False),
                              name="measurements", attachment_type=allure.attachment_type.JSON)
            except ImportError:
                pass


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    run = _run(item.config)
    marker = _check_marker(item)
    if run is None or marker is None:
        return report
    if report.when == "call" or (report.when == "setup" and report.failed):
        verdict, reason = _verdict(item, call)
        attempts = item.stash.get(_ATTEMPTS, [])
        if attempts and verdict == Verdict.PASS:
            verdict = Verdict.FLAKY
            reason = Msg("failed {n} time(s), then passed on a re-run; first failure: {first}", n=len(attempts),
                         first=attempts[0].text())
        elif attempts and verdict in (Verdict.NOT_APPLICABLE, Verdict.INCONCLUSIVE):
            # A re-run that could not judge takes nothing back: the failure measured before stands.
            reason = Msg("{first} (a re-run then ended {verdict}: {reason})", first=attempts[0].text(),
                         verdict=Msg.in_context("verdict", verdict.value), reason=reason)
            verdict = Verdict.FAIL
        c = item.stash.get(_CHECK, None)
        dut = item.callspec.params.get("dut", "") if hasattr(item, "callspec") else ""
        item.stash[_RECORD] = CheckRecord(
            id=marker[0], title=marker[1], suite=_suite_of(item), clauses=marker[2], dut=dut, verdict=verdict,
            reason=reason, measurements=c.measurements if c else [], charts=c.charts if c else [],
            kind="documentary" if item.get_closest_marker("documentary") else "measured", attempts=attempts,
            nodeid=item.nodeid, texts=outcome.texts(reason, marker[1]),
            started=item.stash.get(_STARTED, time.time()), finished=_finished(item))
    return report


def _finished(item: pytest.Item) -> float:
    """When the check ended: an overlapped check's thread says, else now (its call phase just ended)."""
    running = item.stash.get(_RUNNING, None)
    return running.finished if running is not None and running.done.is_set() else time.time()


def _verdict(item: pytest.Item, call: pytest.CallInfo[None]) -> tuple[Verdict, str]:
    return outcome.verdict(item.stash.get(_CHECK, None), call.excinfo.value if call.excinfo else None)


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    run = _run(item.config)
    record = item.stash.get(_RECORD, None)
    if run is not None and record is not None:
        run.emit(record)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    run = _run(session.config)
    if run is None:
        return
    try:
        run.bench.close()
    finally:
        run.write_verdicts()
        _allure_verdicts(session.config, run)


def _allure_verdicts(config: pytest.Config, run: HarnessRun) -> None:
    """Allure shows each check's verdict, not pytest's outcome (N/A skipped, INCONCLUSIVE broken …)."""
    results = config.getoption("--alluredir", None)
    if results:
        from harness.reporting.allure_verdicts import map_verdicts

        map_verdicts(Path(results), run.records)


def pytest_collectreport(report: pytest.CollectReport) -> None:
    """A suite that cannot even be imported must be loud, also when certify hides pytest's output."""
    if report.failed:
        sys.stderr.write(f"harness: cannot collect {report.nodeid}:\n{report.longreprtext}\n")
