"""Hostile or careless YAML (issue 13, item 5): every malformed rig or profile ends in a short file:line
error and exit 2 — for every command that loads one —, never a traceback, a hang or a flood of output."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.config import ConfigError, load_profile, load_rig
from harness.config.errors import MAX_SHOWN_PROBLEMS, MAX_VALUE_CHARS
from harness.config.modbus_types import Strict
from harness.resources import builtin_profile, builtin_rig
from tests.conftest import ROOT, run_cli

EM4 = builtin_profile("tek-sim-em4.yaml")


def _rig_in(tmp_path: Path, text: str | bytes | None = None) -> Path:
    """The built-in meter rig (or ``text``) as a file whose profile path still resolves."""
    path = tmp_path / "rig.yaml"
    if text is None:
        text = builtin_rig().read_text()
    if isinstance(text, str):
        text = text.encode()
    path.write_bytes(text.replace(b"../device_profiles/", str(ROOT / "device_profiles").encode() + b"/"))
    return path


def _line(text: str, fragment: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if fragment in line)


# ---- encoding and characters --------------------------------------------------------------------
HOSTILE_BYTES = {
    "invalid_utf8": b"\nseed: \xff\xfe\n",
    "control_character": b"\nseed: 1\x07\n",
    "nul": b"\ndescription: a\x00b\n",
}


@pytest.mark.parametrize("case", sorted(HOSTILE_BYTES))
def test_bad_bytes_are_a_config_error_with_a_line(tmp_path, case):
    text = builtin_rig().read_bytes()
    path = _rig_in(tmp_path, text + HOSTILE_BYTES[case])
    with pytest.raises(ConfigError) as err:
        load_rig(path)
    problem = err.value.problems[0]
    assert problem.path == path and problem.line == text.count(b"\n") + 2, str(err.value)


@pytest.mark.parametrize("command", ["check", "certify", "replay"])
def test_every_command_that_loads_a_rig_exits_2_on_bad_bytes(tmp_path, command):
    path = _rig_in(tmp_path, builtin_rig().read_bytes() + b"\nseed: \xff\n")
    args = {"check": ["check", str(path)],
            "certify": ["certify", str(path), "--out", str(tmp_path / "out")],
            "replay": ["replay", str(tmp_path / "none.pcap"), "--rig", str(path)]}[command]
    res = run_cli(*args, timeout=120)
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr and f"{path}:" in res.stderr and "UTF-8" in res.stderr


def test_duplicate_key_names_both_lines(tmp_path):
    text = builtin_rig().read_text().replace("seed: 95\n", "seed: 95\nreruns: 1\nseed: 43\n")
    assert "seed: 43" in text
    path = _rig_in(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_rig(path)
    problem = err.value.problems[0]
    assert problem.line == _line(text, "seed: 43")
    assert f"line {_line(text, 'seed: 95')}" in problem.message and "seed" in problem.message


def test_duplicate_key_in_a_flow_mapping(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("vendor: x\nmodbus: {points: {a: {address: 1, address: 2}}}\n")
    with pytest.raises(ConfigError, match="duplicate key 'address'"):
        load_profile(path)


# ---- values -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("where", "value"), [("energy_window_s", ".inf"), ("clock_tolerance_s", ".nan"),
                                              ("energy_window_s", "1e999"), ("max_wall_wait_s", "-.inf")])
def test_float_fields_refuse_inf_and_nan(tmp_path, where, value):
    text = builtin_rig().read_text()
    text = text.replace("timing:\n", f"timing:\n  {where}: {value}\n", 1)
    text = "\n".join(x for x in text.splitlines() if not (x.strip().startswith(f"{where}:") and value not in x))
    path = _rig_in(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_rig(path)
    assert err.value.problems[0].field == f"timing.{where}", str(err.value)
    assert err.value.problems[0].line == _line(text, f"{where}: {value}")


def _strict_models() -> set[type]:
    import harness.config
    import harness.config.load_profile
    import harness.config.record_layout  # noqa: F401

    seen: set[type] = set()
    todo = [Strict]
    while todo:
        cls = todo.pop()
        for sub in cls.__subclasses__():
            if sub not in seen:
                seen.add(sub)
                todo.append(sub)
    return seen


def test_every_config_model_refuses_inf_and_nan():
    """One place (the Strict base) covers every model of both schemas, also those added later."""
    from pydantic import BaseModel

    from harness.config import Profile, Rig

    def reachable(model: type, found: set[type]) -> set[type]:
        import typing

        if isinstance(model, type) and issubclass(model, BaseModel) and model not in found:
            found.add(model)
            for field in model.model_fields.values():
                for arg in _flatten(field.annotation, typing):
                    reachable(arg, found)
        return found

    models = reachable(Profile, set()) | reachable(Rig, set())
    assert len(models) > 30
    assert models <= _strict_models()
    for model in models:
        assert model.model_config.get("allow_inf_nan") is False, model


def _flatten(annotation, typing) -> list:
    out, todo = [], [annotation]
    while todo:
        a = todo.pop()
        out.append(a)
        todo.extend(typing.get_args(a))
    return out


def test_a_huge_value_is_not_echoed_whole(tmp_path):
    text = builtin_rig().read_text().replace("seed: 95", "seed: " + "9" * 20 + "x" * 2_000_000)
    path = _rig_in(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_rig(path)
    shown = str(err.value)
    assert len(shown) < 4 * MAX_VALUE_CHARS and "characters cut" in shown and f"{path}:" in shown


def test_a_huge_unknown_key_is_not_echoed_whole(tmp_path):
    text = builtin_rig().read_text() + "? " + "k" * 1_000_000 + "\n: 1\n"  # an explicit key: any length
    with pytest.raises(ConfigError) as err:
        load_rig(_rig_in(tmp_path, text))
    assert len(str(err.value)) < 4 * MAX_VALUE_CHARS and "unknown field" in str(err.value)


def test_error_location_is_linear_in_the_file(tmp_path):
    """40,000 unknown keys: was 75 s (quadratic line lookup); the output is capped, each line located."""
    text = EM4.read_text()
    path = tmp_path / "p.yaml"
    path.write_text(text + "".join(f"x_unknown_key_{i}: {i}\n" for i in range(40_000)))
    start = time.monotonic()
    with pytest.raises(ConfigError) as err:
        load_profile(path)
    elapsed = time.monotonic() - start
    assert len(err.value.problems) == 40_000
    assert err.value.problems[-1].line == len(text.splitlines()) + 40_000
    assert elapsed < 30, elapsed  # ~3 s here (on a loaded machine); the quadratic lookup took 75 s
    shown = str(err.value).splitlines()
    assert len(shown) == MAX_SHOWN_PROBLEMS + 1 and "39,950 more" in shown[-1]


@pytest.mark.parametrize("text", [
    "a: " + "[" * 5000 + "]" * 5000 + "\n",  # nesting deeper than the parser's recursion
    "seed: " + "1" * 5000 + "\n",  # an integer past Python's digit limit
    "lab: {name: x, address: 2026-13-45}\n",  # a date that is no date
    "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
    "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
    "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
    "g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\nh: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g, *g]\n",
    "a: &a [*a]\n",  # an alias inside its own anchor
    "? [1, 2]\n: x\n",  # a key that is no text
    'duts: {m: {profile: "a\\0b", transport: {tcp: {}}}}\n',  # a NUL in a path (was a traceback)
])
def test_parser_edge_cases_are_config_errors(tmp_path, text):
    path = tmp_path / "rig.yaml"
    path.write_text("name: x\n" + text)
    start = time.monotonic()
    with pytest.raises(ConfigError) as err:
        load_rig(path)
    assert time.monotonic() - start < 5
    assert all(p.path == path for p in err.value.problems) and len(str(err.value)) < 2000


# ---- files that are not files -------------------------------------------------------------------
def test_a_fifo_or_device_is_refused_without_reading(tmp_path):
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="not a regular file"):
        load_rig(fifo)
    with pytest.raises(ConfigError, match="not a regular file"):
        load_profile(Path("/dev/zero"))
    rig = _rig_in(tmp_path, builtin_rig().read_text().replace(
        "profile: ../device_profiles/tek-sim-em4.yaml", "profile: /dev/zero"))
    with pytest.raises(ConfigError, match="not a regular file") as err:
        load_rig(rig)
    assert err.value.problems[0].field == "duts.meter.profile"  # named on the rig's own line


def test_a_profile_path_too_long_for_the_system_is_a_config_error(tmp_path):
    """Found by the fuzz: ENAMETOOLONG from checking whether the profile exists was a traceback."""
    text = builtin_rig().read_text().replace("../device_profiles/tek-sim-em4.yaml", "x" * 5000)
    with pytest.raises(ConfigError) as err:
        load_rig(_rig_in(tmp_path, text))
    problem = err.value.problems[0]
    assert problem.field == "duts.meter.profile" and "too long" in problem.message, str(err.value)
    assert len(str(err.value)) < 4 * MAX_VALUE_CHARS


def test_an_oversized_file_is_refused(tmp_path, monkeypatch):
    from harness.config import yaml_source

    monkeypatch.setattr(yaml_source, "MAX_CONFIG_BYTES", 1000)
    with pytest.raises(ConfigError, match="larger than"):
        load_profile(EM4)


# ---- rig sanity ---------------------------------------------------------------------------------
@pytest.mark.parametrize("edit", [
    ("clock_drift_window_s: 20", "clock_drift_window_s: 1e9"),  # was accepted, and the run slept for ever
    ("clock_drift_window_s: 20", "clock_drift_window_s: 200"),
    ("retries: 2", "retries: 2\n  max_wall_wait_s: 10"),  # now shorter than the drift window of 20 s
])
def test_a_wall_wait_beyond_max_wall_wait_is_refused(tmp_path, edit):
    text = builtin_rig().read_text().replace(*edit)
    assert edit[1] in text
    with pytest.raises(ConfigError) as err:
        load_rig(_rig_in(tmp_path, text))
    problem = err.value.problems[0]
    assert problem.field == "timing.clock_drift_window_s" and "max_wall_wait_s" in problem.message, str(err.value)
    assert problem.line == _line(text, "clock_drift_window_s:")


def test_power_off_time_beyond_max_wall_wait_is_refused(tmp_path):
    text = builtin_rig().read_text()
    assert "off_time_s: 1.0" in text
    text = text.replace("off_time_s: 1.0", "off_time_s: 600")
    with pytest.raises(ConfigError) as err:
        load_rig(_rig_in(tmp_path, text))
    assert "duts.meter.power.off_time_s" in str(err.value) and "max_wall_wait_s" in str(err.value)


@pytest.mark.parametrize("network", ["0.0.0.0/0", "0.0.0.0", "10.0.0.0/8", "8.8.0.0/16", "::/0",
                                     "::ffff:0.0.0.0/96", "64:ff9b::/96", "2001:db8::/32", "224.0.0.0/24",
                                     "255.255.255.255"])
def test_lab_allow_list_refuses_broad_or_unspecified_networks(tmp_path, network):
    text = builtin_rig().read_text() + f"lab_allow_list: ['{network}']\n"
    with pytest.raises(ConfigError) as err:
        load_rig(_rig_in(tmp_path, text))
    assert err.value.problems[0].field.startswith("lab_allow_list"), str(err.value)
    assert err.value.problems[0].line == len(text.splitlines())


def test_lab_allow_list_takes_a_lab_network(tmp_path):
    text = builtin_rig().read_text() + "lab_allow_list: [192.168.0.0/16, 10.213.5.7, 172.16.4.0/24, fd00:1:2::/48]\n"
    loaded = load_rig(_rig_in(tmp_path, text))
    assert loaded.rig.lab_allow_list == ["192.168.0.0/16", "10.213.5.7/32", "172.16.4.0/24", "fd00:1:2::/48"]


# ---- output cut by the reader -------------------------------------------------------------------
@pytest.mark.parametrize("command", [["suites"], ["schema", "rig"], ["check", str(EM4)]])
def test_output_to_a_reader_that_went_away_ends_quietly(command):
    """`harness suites | head`: the reader is gone before the first write (closed at once here, so the
    broken pipe is certain, not a race with head); was a BrokenPipeError traceback."""
    proc = subprocess.Popen([sys.executable, "-m", "harness", *command], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, cwd=ROOT)
    proc.stdout.close()
    _, err = proc.communicate(timeout=120)
    assert err.decode() == "" and proc.returncode == 141, err.decode()


@pytest.mark.parametrize(("line", "field"), [
    ("    client_certificate: /dev/zero\n", "duts.meter.client_certificate"),
    ("    firmware: {current: /dev/zero, next: next.img}\n", "duts.meter.firmware"),
])
def test_rig_files_that_are_no_regular_files_are_refused(tmp_path, line, field):
    """A certificate or firmware image the rig names is read during the run: /dev/zero would never end."""
    text = builtin_rig().read_text().replace("    unit_id: 1\n", "    unit_id: 1\n" + line)
    with pytest.raises(ConfigError) as err:
        load_rig(_rig_in(tmp_path, text))
    problem = err.value.problems[0]
    assert problem.field == field and "not a regular file" in problem.message, str(err.value)
    assert problem.line == _line(text, line.strip())


def test_a_merge_key_may_repeat_a_key_and_errors_point_at_the_mapping_own_line(tmp_path):
    """`<<: *base` is no duplicate; an error in the overriding value is located on its own line."""
    text = builtin_rig().read_text().replace("timing:\n", "base: &base {max_wall_wait_s: 100}\ntiming:\n"
                                             "  <<: *base\n  max_wall_wait_s: -5\n", 1)
    with pytest.raises(ConfigError) as err:
        load_rig(_rig_in(tmp_path, text))
    problems = {p.field: p for p in err.value.problems}
    assert problems["timing.max_wall_wait_s"].line == _line(text, "max_wall_wait_s: -5")
    assert "base" in problems  # unknown top-level key: reported, not a parse error


@pytest.mark.parametrize("arg", ["{", "x}", "{0}", "{}", "{host.__class__}", "{port[0]}"])
def test_a_malformed_launch_placeholder_is_refused_at_load(tmp_path, arg):
    """Was accepted, and the launch failed with a ValueError or IndexError traceback (or reached into objects)."""
    text = builtin_rig().read_text().replace('"--defects", "{defects}"]', f'"--defects", "{arg}"]')
    assert arg in text
    with pytest.raises(ConfigError) as err:
        load_rig(_rig_in(tmp_path, text))
    assert err.value.problems[0].field == "duts.meter.launch.command", str(err.value)


def test_a_valid_file_with_a_huge_name_is_reported_briefly(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(EM4.read_text().replace("vendor: ", "vendor: " + "V" * 1_000_000, 1))
    res = run_cli("check", str(path))
    assert res.returncode == 0 and "OK" in res.stdout and len(res.stdout) < 2 * MAX_VALUE_CHARS, res.stderr


@pytest.mark.parametrize("kind", ["device", "fifo", "garbage"])
def test_replay_of_a_file_that_is_no_reproducer_exits_2(tmp_path, kind):
    """Siblings of the rig's own bytes: `harness replay /dev/zero` was a Scapy_Exception traceback."""
    from harness.replay import replay

    pcap = {"device": Path("/dev/zero"), "fifo": tmp_path / "r.pcap", "garbage": tmp_path / "g.pcap"}[kind]
    if kind == "fifo":
        os.mkfifo(pcap)
    elif kind == "garbage":
        pcap.write_bytes(b"\x00" * 100)
    assert replay(pcap, builtin_rig(), None, [], tmp_path / "out") == 2
    assert not (tmp_path / "out").exists()
