"""One certify run for several seeded defects: a copy of a built-in rig with one simulated DUT per defect.

Proving that a defect fails exactly its check means running the whole suite with it; one harness run per
defect pays the harness's start-up and report each time. A rig whose DUTs are the same simulator, each
seeded with one defect (the rig's own `defects:`), runs the suite once over all of them — every DUT's
verdicts stand alone, so each still shows what its defect, and only it, breaks.
"""

from __future__ import annotations

import copy
import functools
import json
import subprocess
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

import yaml

PASSING = {"PASS", "N/A"}
GOLDEN = "golden"  # the unseeded DUT a batch may carry beside its seeded ones (no defect is named so)


def rig_per_defect(rig: Path, defects: Iterable[str], out: Path,
                   shape: Callable[[str, dict], None] | None = None, golden: bool = False) -> Path:
    """Write ``out``: ``rig`` with its single DUT replaced by one DUT per defect, named after it, and with
    ``golden`` an unseeded copy too, named GOLDEN. ``shape(defect, dut)`` may trim a defect's copy to what its
    check needs (an AMR server's field: only the meters it reads)."""
    data = yaml.safe_load(rig.read_text(encoding="utf-8"))
    (_name, dut), = data["duts"].items()
    dut["profile"] = str((rig.parent / dut["profile"]).resolve())
    data["duts"] = {defect: {**copy.deepcopy(dut), "defects": [defect]} for defect in defects}
    if shape is not None:
        for defect, copied in data["duts"].items():
            shape(defect, copied)
    if golden:
        data["duts"][GOLDEN] = {**copy.deepcopy(dut), "defects": []}
    out.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return out


def not_passing(out_dir: Path) -> dict[str, dict[str, str]]:
    """DUT -> {check id: verdict} of every check that neither passed nor was N/A, from OUT/checks.jsonl."""
    return not_passing_of(map(json.loads, (out_dir / "checks.jsonl").read_text(encoding="utf-8").splitlines()))


def not_passing_of(records: Iterable[dict]) -> dict[str, dict[str, str]]:
    """not_passing of these checks.jsonl records (e.g. DefectBatch.records of some of its DUTs)."""
    found: dict[str, dict[str, str]] = {}
    for record in records:
        found.setdefault(record["dut"], {})
        if record["verdict"] not in PASSING:
            found[record["dut"]][record["id"]] = record["verdict"]
    return found


@functools.cache
def _listed_checks() -> dict[str, tuple[str, ...]]:
    """Suite -> its check ids, as `harness suites` lists them (the harness's own collection of the check markers)."""
    res = subprocess.run([sys.executable, "-m", "harness", "suites"], capture_output=True, text=True, timeout=120,
                         stdin=subprocess.DEVNULL, check=True)
    listed: dict[str, list[str]] = {}
    current = ""
    for line in res.stdout.splitlines():
        if line.startswith("  "):
            listed[current].append(line.split()[0])
        elif line.strip():
            current = line.split(":", 1)[0]
            listed[current] = []
    return {suite: tuple(ids) for suite, ids in listed.items()}


def suite_check_ids(suite: str) -> list[str]:
    """Every check id of ``suite``: `--check DUT:ID` for each runs on DUT what `--suite SUITE` would run — the
    checks of other device kinds have no item on it — while the batch's other DUTs run only their own check."""
    ids = _listed_checks().get(suite)
    assert ids, f"`harness suites` lists no checks of {suite}"
    return sorted(ids)
