"""Profiles and rigs: the built-ins validate, and every error names file, line, field — exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.config import ConfigError, load_profile, load_rig
from harness.resources import builtin_profile, builtin_rig
from tests.conftest import ROOT, run_cli


def test_builtin_rig_and_profile_load(builtin_loaded_rig):
    profile = builtin_loaded_rig.profiles["meter"]
    assert profile.tariff_count == 4
    assert profile.tariffs.tariff_at(__import__("datetime").time(8, 0)) == 1
    assert profile.tariffs.tariff_at(__import__("datetime").time(23, 30)) == 4


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_unknown_field_names_file_line_and_field(tmp_path):
    text = builtin_profile("tek-sim-em4.yaml").read_text().replace("  writable: true\n", "  writeable: true\n")
    path = _write(tmp_path, "p.yaml", text)
    with pytest.raises(ConfigError) as err:
        load_profile(path)
    problem = err.value.problems[0]
    line_no = text.splitlines().index("  writeable: true") + 1
    assert (problem.path, problem.line, problem.field) == (path, line_no, "clock.writeable")
    assert "unknown field" in problem.message


def test_bad_value_says_what_was_expected(tmp_path):
    text = builtin_profile("tek-sim-em4.yaml").read_text().replace("type: u64, unit: Wh}", "type: u65, unit: Wh}", 1)
    path = _write(tmp_path, "p.yaml", text)
    with pytest.raises(ConfigError) as err:
        load_profile(path)
    msg = str(err.value)
    assert "modbus.points.active_import_total.type" in msg and "'u16'" in msg and "u65" in msg
    assert f"{path}:{text.splitlines().index(next(x for x in text.splitlines() if 'u65' in x)) + 1}:" in msg


def test_semantic_errors_are_reported(tmp_path):
    text = builtin_profile("tek-sim-em4.yaml").read_text().replace("{from: \"10:00\", tariff: 2}",
                                                                   "{from: \"10:00\", tariff: 7}")
    with pytest.raises(ConfigError, match="T7 but count is 4"):
        load_profile(_write(tmp_path, "p.yaml", text))
    overlap = builtin_profile("tek-sim-em4.yaml").read_text().replace("address: 0x0104", "address: 0x0102")
    with pytest.raises(ConfigError, match="overlap"):
        load_profile(_write(tmp_path, "q.yaml", overlap))


def test_rig_with_missing_profile(tmp_path):
    text = builtin_rig().read_text().replace("../device_profiles/tek-sim-em4.yaml", "nowhere.yaml")
    path = _write(tmp_path, "rig.yaml", text)
    with pytest.raises(ConfigError) as err:
        load_rig(path)
    assert "nowhere.yaml not found" in str(err.value)
    assert err.value.problems[0].field == "duts.meter.profile"


def test_a_serial_link_proxy_needs_the_simulated_line(tmp_path):
    """`link: proxy` on a serial transport relays the harness's own pty line; a real port or a namespace is refused
    with the DUT's field named, not a traceback at bring-up."""
    rtu = builtin_rig("sim-meter-rtu.yaml").read_text().replace("../device_profiles/", f"{ROOT}/device_profiles/")
    assert load_rig(_write(tmp_path, "ok.yaml", rtu)).rig.duts["meter"].link == "proxy"
    real = rtu.replace("port: pty", "port: /dev/ttyUSB0")
    with pytest.raises(ConfigError, match="/dev/ttyUSB0 is a real port") as err:
        load_rig(_write(tmp_path, "real.yaml", real))
    assert err.value.problems[0].field.startswith("duts.meter")
    with pytest.raises(ConfigError, match="link netns faults a TCP transport"):
        load_rig(_write(tmp_path, "ns.yaml", rtu.replace("link: proxy", "link: netns")))


def test_cli_check_and_exit_codes(tmp_path):
    ok = run_cli("check", str(builtin_rig()), str(builtin_profile("tek-sim-em4.yaml")))
    assert ok.returncode == 0, ok.stderr
    assert "rig 'sim-meter' OK" in ok.stdout
    bad = _write(tmp_path, "bad.yaml", "name: x\nduts:\n  m:\n    profile: p.yaml\n    transport: {tcp: {port: 0}}\n")
    res = run_cli("check", str(bad))
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    assert f"{bad}:5: duts.m.transport.tcp" in res.stderr
    broken = _write(tmp_path, "broken.yaml", "vendor: [unclosed\n")
    res = run_cli("check", str(broken))
    assert res.returncode == 2 and "not valid YAML" in res.stderr and "Traceback" not in res.stderr


def test_schema_is_json_schema():
    res = run_cli("schema", "profile")
    schema = json.loads(res.stdout)
    assert res.returncode == 0 and "modbus" in schema["properties"]
    assert json.loads(run_cli("schema", "rig").stdout)["title"] == "tek-harness rig"


def test_certify_with_bad_rig_exits_2(tmp_path):
    path = _write(tmp_path, "rig.yaml", "name: x\nduts: {}\n")
    res = run_cli("certify", str(path), "--out", str(tmp_path / "out"))
    assert res.returncode == 2 and "Traceback" not in res.stderr and "duts" in res.stderr
