"""`harness certify`: pytest with the harness plugin and a rig, then the table of clause verdicts.

It prepares the output directory (with copies of the rig and profiles actually used), runs the
suites the plugins provide in-process, and turns verdicts.json into the exit code: 0 when every
applicable clause passed, 1 when any failed or was inconclusive, 2 for bad configuration.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


def _err(message: str) -> int:
    print(f"harness certify: {message}", file=sys.stderr)
    return EXIT_USAGE


def _known_defects() -> set[str]:
    from harness.simulators.defects import HEAT_DEFECTS, METER_DEFECTS

    return set(METER_DEFECTS) | set(HEAT_DEFECTS)


def _plugin_args() -> list[str]:
    """Load our pytest plugin explicitly only when its entry point is not installed."""
    eps = metadata.entry_points(group="pytest11")
    return [] if any(ep.value == "harness.pytest_plugin" for ep in eps) else ["-p", "harness.pytest_plugin"]


def certify(rig_path: Path | None, out: Path | None, suites: list[str], defects: list[str],
            transcript: bool = True, verbose: bool = False, checks: list[str] | None = None) -> int:
    import pytest

    from harness import registry
    from harness.config import ConfigError, load_rig
    from harness.reporting.outdir import default_out
    from harness.resources import builtin_rig

    rig_path = rig_path or builtin_rig()
    try:
        loaded = load_rig(rig_path)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_USAGE
    available = registry.suites()
    unknown = [s for s in suites if s not in available]
    if unknown:
        return _err(f"unknown suite(s) {', '.join(unknown)}; suites: {', '.join(available)}")
    if defects:
        if not any(d.launch for d in loaded.rig.duts.values()):
            return _err("--defect needs a simulated DUT (one with `launch`) in the rig")
        bad = [d for d in defects if d not in _known_defects()]
        if bad:
            return _err(f"unknown defect(s) {', '.join(bad)}; see `harness sim meter --list-defects` "
                        "and `harness sim heat-meter --list-defects`")

    out = out or default_out(loaded.rig.name)
    if (out / "checks.jsonl").exists():
        return _err(f"{out} already holds a run; choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    _keep_configuration(loaded, out)

    # Every suite is collected; --suite/--check deselect in the plugin, so the run knows what it skipped.
    args = [str(s.path) for s in available.values()] + [
        "--rig", str(loaded.path), "--harness-out", str(out), "--alluredir", str(out / "allure-results"),
        "-c", os.devnull, "--rootdir", str(Path(__file__).resolve().parent), "-p", "no:cacheprovider",
        "-o", "python_files=test_*.py",
    ]
    for s in suites:
        args += ["--harness-suite", s]
    for d in defects:
        args += ["--harness-defect", d]
    for c in checks or []:
        args += ["--harness-check", c]
    if not transcript:
        args.append("--harness-no-transcript")
    args += ["-v"] if verbose else ["-p", "no:terminal"]
    args += _plugin_args()

    print(f"Certifying rig {loaded.rig.name!r} ({len(loaded.rig.duts)} DUT(s)) → {out}")
    if defects:
        print(f"  seeded defects: {', '.join(defects)}")
    t0 = time.monotonic()
    code = pytest.main(args)
    elapsed = time.monotonic() - t0
    verdicts_path = out / "verdicts.json"
    if code in (pytest.ExitCode.USAGE_ERROR, pytest.ExitCode.INTERNAL_ERROR) or not verdicts_path.exists():
        return _err(f"the run could not start (pytest exit {int(code)}); rerun with -v for details")
    verdicts = json.loads(verdicts_path.read_text(encoding="utf-8"))
    if code == pytest.ExitCode.INTERRUPTED or verdicts.get("interrupted"):
        print("\nthe run was interrupted: checks that did not finish are listed as not run", file=sys.stderr)
    from harness.reporting.table import clause_table

    print()
    print(clause_table(verdicts))
    print(f"\n{elapsed:.1f} s; evidence in {out}/ (checks.jsonl, verdicts.json, transcript.jsonl, allure-results/)")
    complete = verdicts["certification_grade"] or not verdicts.get("interrupted")
    return EXIT_OK if verdicts["verdict"] in ("PASS", "N/A") and complete else EXIT_FAIL


def _keep_configuration(loaded: Any, out: Path) -> None:
    """The rig and profiles exactly as used are part of the evidence."""
    dest = out / "config"
    dest.mkdir(exist_ok=True)
    shutil.copy2(loaded.path, dest / f"rig-{loaded.path.name}")
    for path in set(loaded.profile_paths.values()):
        shutil.copy2(path, dest / f"profile-{path.name}")


class _Collector:
    def __init__(self) -> None:
        self.checks: list[tuple[str, str, str]] = []

    def pytest_collection_modifyitems(self, items: list[Any]) -> None:
        for item in items:
            mark = item.get_closest_marker("check")
            if mark:
                self.checks.append((Path(str(item.path)).parent.name, mark.args[0], mark.args[1]))


def list_suites() -> int:
    import pytest

    from harness import registry

    suites = registry.suites()
    collector = _Collector()
    pytest.main([str(s.path) for s in suites.values()] + ["--collect-only", "-p", "no:terminal", "-c",
                                                          os.devnull, "-p", "no:cacheprovider",
                                                          *_plugin_args()], plugins=[collector])
    for name, spec in suites.items():
        print(f"{name}: {spec.description}")
        for suite, check_id, title in sorted(set(collector.checks)):
            if suite == name:
                print(f"  {check_id}  {title}")
    return EXIT_OK
