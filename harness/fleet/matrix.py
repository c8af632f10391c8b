"""`harness fleet matrix RIG… [--defects all]`: the harness's self-validation, one job per rig and seeded defect.

Each rig runs golden (its simulators as built) and once per seeded defect of its simulators (``--defect D
--check <the check that must catch it> --reruns 0``). Expected: golden passes; every defect FAILs its check
on its clause. The table says expected against observed for each job, and any miss makes the exit code 1.
The golden job runs the checks the chosen defects name (so it proves those checks pass on the good device),
or the whole rig when no defect is chosen.

The jobs go through the fleet (all-simulated rigs: the shared queue, or ``--bench``), or with ``--local N``
through a pool of N `harness certify` processes on this machine, with nothing to install.
"""

from __future__ import annotations

import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.fleet.errors import FleetError
from harness.fleet.runner import certify_argv, run_certify, summary, tail
from harness.simulators.amr_server.defects import AMR_DEFECTS
from harness.simulators.defects import CONCENTRATOR_DEFECTS, CONTROLLER_DEFECTS, HEAT_DEFECTS, METER_DEFECTS, Defect

CATALOGUES: dict[str, dict[str, Defect]] = {"meter": METER_DEFECTS, "heat-meter": HEAT_DEFECTS,
                                            "concentrator": CONCENTRATOR_DEFECTS, "controller": CONTROLLER_DEFECTS,
                                            "amr-server": AMR_DEFECTS}
PASSING = ("PASS", "N/A")
WAIT_POLL_S = 1.0


def rig_defects(loaded: Any) -> dict[str, Defect]:
    """The seeded defects of the built-in simulators the rig launches (`harness sim DEVICE` in a launch command)."""
    found: dict[str, Defect] = {}
    for dut in loaded.rig.duts.values():
        command = dut.launch.command if dut.launch else []
        for i, arg in enumerate(command[:-1]):
            if arg == "sim" and command[i + 1] in CATALOGUES:
                found.update(CATALOGUES[command[i + 1]])
    return found


@dataclass
class Entry:
    """One job of the matrix and what came of it."""

    rig: Path
    loaded: Any
    defect: Defect | None
    checks: list[str]
    job: str = ""
    result: dict[str, Any] | None = None
    error: str = ""
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.defect.name if self.defect else "golden"

    def options(self) -> dict[str, Any]:
        if self.defect is None:
            return {"suites": [], "checks": self.checks, "defects": [], "reruns": None}
        return {"suites": [], "checks": [self.defect.expect], "defects": [self.defect.name], "reruns": 0}

    @property
    def expected(self) -> str:
        return "PASS" if self.defect is None else f"FAIL {self.defect.expect} (cl. {self.defect.clause})"

    def observed(self) -> tuple[str, bool]:
        if self.result is None:
            return self.error or "no result", False
        if self.defect is None:
            bad = [f"{k.split(':', 1)[1]} {v}" for k, v in self.result["checks"].items() if v not in PASSING]
            verdict = str(self.result["verdict"])
            return (f"{verdict} ({', '.join(bad[:3])})" if bad else verdict), verdict in PASSING
        expect, clause = self.defect.expect, self.defect.clause
        seen = {k.split(":", 1)[0]: v for k, v in self.result["checks"].items() if k.endswith(f":{expect}")}
        if not seen:
            return f"{expect} did not run", False
        clauses = self.result["clauses"]
        caught = [dut for dut, v in seen.items() if v == "FAIL" and clauses.get(f"{dut}:{clause}") == "FAIL"]
        return f"{'/'.join(sorted(set(seen.values())))} {expect}", bool(caught)


def plan(rigs: list[Path], defects: str | None) -> list[Entry]:
    """The jobs: per rig golden plus one per chosen defect (``all``, or comma-separated names)."""
    from harness.config import ConfigError, load_rig

    wanted = {n.strip() for n in (defects or "").split(",") if n.strip() and defects != "all"}
    entries: list[Entry] = []
    known: set[str] = set()
    for rig in rigs:
        try:
            loaded = load_rig(rig)
        except ConfigError as exc:
            raise FleetError(str(exc)) from None
        catalogue = rig_defects(loaded)
        known |= catalogue.keys()
        chosen = [d for name, d in catalogue.items() if defects == "all" or name in wanted]
        entries.append(Entry(rig, loaded, None, sorted({d.expect for d in chosen})))
        entries += [Entry(rig, loaded, d, []) for d in chosen]
    unknown = wanted - known
    if unknown:
        raise FleetError(f"no rig given has a simulator with defect(s) {', '.join(sorted(unknown))}")
    return entries


def run_fleet(entries: list[Entry], bench: str | None, broker: str | None, timeout: float) -> None:
    from harness.fleet.app import app
    from harness.fleet.client import FINAL, connect, enqueue, prepare

    packed: dict[Path, tuple[Any, dict[str, Any]]] = {}
    for entry in entries:  # every rig validated and packed (once) before the first job is queued
        if entry.rig not in packed:
            defects = [e.defect.name for e in entries if e.rig == entry.rig and e.defect]
            packed[entry.rig] = prepare(entry.rig, bench, [], defects)
        entry.loaded, entry.config = packed[entry.rig]
    registry = connect(broker)
    for entry in entries:
        entry.job = enqueue(registry, entry.loaded, entry.config, bench, **entry.options())
    print(f"matrix: {len(entries)} job(s) queued; waiting", file=sys.stderr, flush=True)
    deadline = time.monotonic() + timeout
    waiting = list(entries)
    while waiting and time.monotonic() < deadline:
        time.sleep(WAIT_POLL_S)
        for entry in list(waiting):
            result = app.AsyncResult(entry.job)
            if result.state == "SUCCESS":
                entry.result = result.info
            elif result.state in FINAL:
                entry.error = f"{result.state}: {result.info}"
            else:
                continue
            waiting.remove(entry)
    for entry in waiting:
        entry.error = f"not finished within {timeout:g} s ({app.AsyncResult(entry.job).state})"


def run_local(entries: list[Entry], workers: int, out: Path | None) -> None:
    """The same jobs on a pool of ``workers`` `harness certify` processes here; run folders in ``out``."""
    with tempfile.TemporaryDirectory(prefix="harness-matrix-") as tmp:
        base = out or Path(tmp)

        def one(index: int, entry: Entry) -> None:
            folder = base / f"{index:03d}-{entry.loaded.rig.name}-{entry.label}"
            run_dir = folder / "run"
            code = run_certify(certify_argv(entry.options(), entry.rig, run_dir), folder / "progress.jsonl",
                               folder / "certify.log")
            if code in (0, 1) and (run_dir / "verdicts.json").exists():
                entry.result = summary(run_dir)
            else:
                entry.error = f"harness certify exited {code}: {tail(folder / 'certify.log', 2)}"

        with ThreadPoolExecutor(max_workers=workers) as pool:
            for future in [pool.submit(one, i, e) for i, e in enumerate(entries)]:
                future.result()


def table(entries: list[Entry]) -> tuple[str, int]:
    rows = [("RIG", "JOB", "EXPECTED", "OBSERVED", "RESULT")]
    misses = 0
    for entry in entries:
        observed, ok = entry.observed()
        misses += not ok
        rows.append((entry.loaded.rig.name, entry.label, entry.expected, observed, "ok" if ok else "MISS"))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(widths[i]) if i < 4 else cell for i, cell in enumerate(r)).rstrip() for r in rows]
    return "\n".join(lines), misses


def matrix(rigs: list[Path], defects: str | None, local: int | None, bench: str | None, broker: str | None,
           out: Path | None, timeout: float) -> int:
    entries = plan(rigs, defects)
    t0 = time.monotonic()
    if local is not None:
        if local < 1:
            raise FleetError("--local takes a number of processes, 1 or more")
        run_local(entries, local, out)
    else:
        run_fleet(entries, bench, broker, timeout)
    text, misses = table(entries)
    print(text)
    print(f"\n{len(entries) - misses}/{len(entries)} as expected in {time.monotonic() - t0:.0f} s"
          + (f"; {misses} MISS" if misses else ""))
    return 1 if misses else 0
