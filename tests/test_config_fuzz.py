"""Fuzz of the YAML loader (issue 13): random and mutated rigs and profiles through `harness check`, in
process, each ending in exit 0 (valid) or 2 (a config error) within a second of CPU — never a traceback or a
hang.

The mutations start from the built-in rigs and profiles (so most cases get deep into the schema, not
only the parser): lines deleted, duplicated, swapped and re-indented, values swapped between lines or
replaced by hostile ones (huge numbers, inf/NaN, long strings, deep nesting, aliases, tags), random
bytes inserted, the file cut short. The default run — 1,600 cases, deterministic — takes ~15 s;
``HARNESS_FUZZ_EXAMPLES=5000`` runs that many per test, with fresh randomness (3 × 3,000 passed, 3 min).
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.cli import main
from tests.conftest import ROOT

LONG_RUN = int(os.environ.get("HARNESS_FUZZ_EXAMPLES", "0"))


def fuzz(examples: int) -> settings:
    """``examples`` cases in the default run (deterministic: CI never meets a new case by chance), else the
    long run's count with fresh randomness. The second per case is enforced by ``_check`` in CPU time
    (hypothesis's wall-clock deadline flaked at 1.3 s on this shared two-core machine)."""
    return settings(max_examples=LONG_RUN or examples, deadline=None, derandomize=not LONG_RUN, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


SEEDS = {p.name: p.read_text().replace("../device_profiles/", f"{ROOT / 'device_profiles'}/")
         for p in sorted([*(ROOT / "rigs").glob("*.yaml"), *(ROOT / "device_profiles").glob("*.yaml")])}
HOSTILE_VALUES = [
    "9" * 400, "-" + "9" * 5000, "1e999", "-1e999", ".inf", "-.inf", ".nan", "1e9", "-1", "0", "0x7fffffffffffffff",
    "x" * 100_000, "'" + "y" * 20_000 + "'", "[" * 2000 + "]" * 2000, "{a: " * 200 + "1" + "}" * 200,
    "&a [*a]", "*undefined", "!!binary AAAA", "!!python/object/apply:os.system ['true']", "!!float nan",
    "2026-13-45", "2026-02-30", "null", "~", "[]", "{}", "''", "true", "\"\\x00\"", "\"\\ud800\"", "|\n  text",
    "../../../../etc/passwd", "/dev/zero", "0.0.0.0/0", "{port: auto}", "[1, 2, 3]", "yes", "=", "<<: {}",
]
PATH_KEYS = ("profile", "file", "certificate", "key", "client_certificate", "client_key", "current", "next")
HOSTILE_PATHS = ["/dev/zero", "/dev/null", "/proc/self/mem", "/etc/passwd", "../../../../etc/passwd", "/", ".",
                 "..", "docs", "docs/../../x", "\"a\\0b\"", "''", "x" * 5000, "/" + "a/" * 3000, "~", "{state_dir}",
                 "{nope}", "/proc/self/fd/0", "/dev/stdin", "/dev/tty"]


def _mutate(text: str, data: st.DataObject) -> str:
    """One mutation of ``text``, drawn from ``data``."""
    lines = text.splitlines(keepends=True) or ["\n"]
    i = data.draw(st.integers(0, len(lines) - 1), label="line")
    kind = data.draw(st.sampled_from(["delete", "duplicate", "swap_lines", "swap_values", "hostile_value",
                                      "bytes", "cut", "indent", "key_typo", "hostile_path"]), label="mutation")
    if kind == "hostile_path":  # aim at a line naming a file: what the loader opens or confines
        paths = [n for n, x in enumerate(lines) if x.strip().lstrip("- ").partition(":")[0] in PATH_KEYS]
        if paths:
            i = data.draw(st.sampled_from(paths), label="path line")
            key = lines[i].partition(":")[0]
            lines[i] = f"{key}: {data.draw(st.sampled_from(HOSTILE_PATHS), label='path')}\n"
        return "".join(lines)
    line = lines[i]
    if kind == "delete":
        del lines[i]
    elif kind == "duplicate":
        lines.insert(i, line)
    elif kind == "swap_lines":
        j = data.draw(st.integers(0, len(lines) - 1))
        lines[i], lines[j] = lines[j], lines[i]
    elif kind in ("swap_values", "hostile_value") and ":" in line:
        key, _, _ = line.partition(":")
        if kind == "swap_values":
            other = lines[data.draw(st.integers(0, len(lines) - 1))]
            value = other.partition(":")[2].strip() or "x"
        else:
            value = data.draw(st.sampled_from(HOSTILE_VALUES), label="value")
        lines[i] = f"{key}: {value}\n"
    elif kind == "bytes":
        at = data.draw(st.integers(0, len(line)))
        junk = data.draw(st.binary(min_size=1, max_size=8)).decode("latin-1")
        lines[i] = line[:at] + junk + line[at:]
    elif kind == "cut":
        return "".join(lines[:i]) + line[: data.draw(st.integers(0, len(line)))]
    elif kind == "indent":
        lines[i] = line[2:] if line.startswith("  ") and data.draw(st.booleans()) else "  " + line
    elif kind == "key_typo" and ":" in line:
        key, sep, rest = line.partition(":")
        lines[i] = key + data.draw(st.sampled_from(["_", "x", "s", " "])) + sep + rest
    return "".join(lines)


@contextlib.contextmanager
def _scratch() -> Path:
    with tempfile.TemporaryDirectory(prefix="harness-fuzz-") as d:
        yield Path(d)


def _check(folder: Path, content: bytes) -> None:
    """`harness check` on ``content``: exit 0 or 2 within a second, nothing but a config error on stderr."""
    path = folder / "case.yaml"
    path.write_bytes(content)
    out, err = io.StringIO(), io.StringIO()
    start, start_cpu = time.monotonic(), time.process_time()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(["check", str(path)])
        except SystemExit as exc:  # argparse; nothing here should reach it
            code = exc.code
    cpu, elapsed = time.process_time() - start_cpu, time.monotonic() - start
    assert code in (0, 2), (code, err.getvalue()[:2000])
    assert "Traceback" not in err.getvalue()
    assert cpu < 1.0, cpu  # the work: within a second whatever else the machine runs
    assert elapsed < 5.0, elapsed  # no waiting either (a FIFO, a device): CPU time would not show a hang
    assert len(err.getvalue()) < 60_000  # bounded: at most 50 problems of a few hundred characters


@fuzz(800)
@given(st.data())
def test_mutated_builtin_files_end_in_exit_0_or_2(data):
    name = data.draw(st.sampled_from(sorted(SEEDS)), label="seed file")
    text = SEEDS[name]
    for _ in range(data.draw(st.integers(1, 4), label="mutations")):
        text = _mutate(text, data)
    with _scratch() as folder:
        _check(folder, text.encode("utf-8", "surrogatepass"))


@fuzz(600)
@given(st.binary(max_size=4000))
def test_random_bytes_end_in_exit_0_or_2(content):
    with _scratch() as folder:
        _check(folder, content)


@fuzz(200)
@given(st.recursive(st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=50),
                    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=20), inner,
                                                                                 max_size=5), max_leaves=40))
def test_random_yaml_documents_end_in_exit_0_or_2(document):
    import yaml

    with _scratch() as folder:
        _check(folder, yaml.safe_dump({"duts": document} if isinstance(document, dict) else document).encode())


@pytest.mark.parametrize("name", sorted(SEEDS))
def test_the_seeds_themselves_pass(name):
    with _scratch() as folder:
        _check(folder, SEEDS[name].encode())
