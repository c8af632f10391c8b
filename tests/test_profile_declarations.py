"""Profile declarations (issue 12): point names, `extends:`, record layouts of real meters."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.config import ConfigError, load_profile
from harness.config.point_names import check_point_name
from harness.resources import builtin_profile
from tests.conftest import run_cli

EM4 = builtin_profile("tek-sim-em4.yaml")


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# ---- point names ----------------------------------------------------------------------------------
def test_misspelt_point_is_a_file_line_error_with_a_suggestion(tmp_path):
    text = EM4.read_text().replace("    active_import_total:", "    actve_import_total:")
    path = _write(tmp_path, "p.yaml", text)
    res = run_cli("check", str(path))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    line = text.splitlines().index(next(x for x in text.splitlines() if "actve_import_total" in x)) + 1
    assert f"{path}:{line}: modbus.points.actve_import_total.[key]:" in res.stderr
    assert "did you mean `active_import_total`?" in res.stderr


def test_vendor_points_need_the_prefix(tmp_path):
    vendor = "    x_ct_primary_a:     {address: 0x0022, type: u16}\n"
    text = EM4.read_text().replace("    active_tariff:", vendor + "    active_tariff:")
    assert "x_ct_primary_a" in load_profile(_write(tmp_path, "ok.yaml", text)).modbus.points
    with pytest.raises(ConfigError) as err:
        load_profile(_write(tmp_path, "bad.yaml", text.replace("x_ct_primary_a", "ct_primary_a")))
    assert "`x_ct_primary_a`" in str(err.value) and "did you mean" not in str(err.value)


@pytest.mark.parametrize("name", ["active_import_total", "reactive_export_t8", "serial_number", "heat_energy",
                                  "link_status", "active_tariff", "x_anything"])
def test_canonical_and_vendor_names_pass(name):
    assert check_point_name(name) == name


@pytest.mark.parametrize("name", ["active_import_t01", "active_import_t9", "Active_import_total", "x_", "energy"])
def test_other_names_are_refused(name):
    with pytest.raises(ValueError, match="not a canonical quantity"):
        check_point_name(name)


def test_opcua_identity_and_near_miss_names_are_checked(tmp_path):
    pc1 = builtin_profile("tek-sim-pc1.yaml").read_text()
    assert load_profile(builtin_profile("tek-sim-pc1.yaml")).opcua.points["supply_temperature"]
    for wrong, right in (("serial_number:", "serail_number:"), ("    return_temperature:", "    retrun_temperature:")):
        with pytest.raises(ConfigError) as err:
            load_profile(_write(tmp_path, "p.yaml", pc1.replace(wrong, right, 1)))
        assert f"`{wrong.strip(' :')}`" in str(err.value), str(err.value)


# ---- extends -------------------------------------------------------------------------------------
EM4D = builtin_profile("tek-sim-em4d.yaml")


def test_extends_merges_mappings_replaces_values_and_null_removes(tmp_path):
    base = _write(tmp_path, "base.yaml", "vendor: v\nmodel: B\nkind: electricity_meter\nclock: {writable: true}\n"
                  "modbus:\n  max_connections: 4\n  points:\n    serial_number: {address: 0, type: u32}\n")
    (tmp_path / "sub").mkdir()
    child = _write(tmp_path, "sub/child.yaml", "extends: ../base.yaml\nmodel: C\nclock: {utc_offset: '+05:00'}\n"
                   "modbus:\n  max_connections: null\n  points:\n"
                   "    firmware_version: {address: 2, type: string, length: 2}\n")
    p = load_profile(child)
    assert (p.vendor, p.model, p.clock.writable, p.clock.utc_offset) == ("v", "C", True, "+05:00")
    assert set(p.modbus.points) == {"serial_number", "firmware_version"} and p.modbus.max_connections is None
    assert load_profile(base).modbus.max_connections == 4


def test_errors_in_an_extended_profile_name_the_file_that_declared_them(tmp_path):
    parent = _write(tmp_path, "parent.yaml", EM4.read_text().replace("    active_import_t2:", "    actve_import_t2:"))
    child = _write(tmp_path, "child.yaml", "extends: parent.yaml\nmodel: X\nclock:\n  writeable: true\n")
    with pytest.raises(ConfigError) as err:
        load_profile(child)
    where = {(p.path, p.line) for p in err.value.problems}
    parent_line = parent.read_text().splitlines().index(
        next(x for x in parent.read_text().splitlines() if "actve_import_t2" in x)) + 1
    assert where == {(parent, parent_line), (child, 4)}, err.value


@pytest.mark.parametrize("text, message", [
    ("extends: a.yaml\n", "cycle: a.yaml -> b.yaml -> a.yaml"),
    ("extends: nowhere.yaml\n", "nowhere.yaml, is not found"),
    ("extends: [a.yaml]\n", "expected the path of the profile"),
])
def test_bad_extends_is_a_file_line_error(tmp_path, text, message):
    _write(tmp_path, "b.yaml", "vendor: v\nextends: a.yaml\n")
    a = _write(tmp_path, "a.yaml", "model: m\n" + text.replace("a.yaml", "b.yaml", 1) if "cycle" in message else
               "model: m\n" + text)
    res = run_cli("check", str(a))
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert message in res.stderr and ":2: extends:" in res.stderr, res.stderr


def test_evidence_of_an_extended_profile_is_the_resolved_profile(tmp_path):
    from harness.config.extends import resolve_profile
    from harness.config.loading import load_rig

    source = resolve_profile(EM4D)
    text = source.evidence_bytes().decode()
    assert "tek-sim-em4d.yaml" in text and "tek-sim-em4.yaml" in text and "extends" not in text.split("\n", 3)[-1]
    copy = _write(tmp_path, "resolved.yaml", text)
    assert load_profile(copy).model_dump() == load_profile(EM4D).model_dump()  # self-contained, no parent needed
    loaded = load_rig(builtin_profile("tek-sim-em4d.yaml").parent.parent / "rigs" / "sim-meter-dual.yaml")
    (dut,) = loaded.profiles
    assert loaded.profile_hash(dut) == source.sha256()
    assert resolve_profile(EM4).evidence_bytes() == EM4.read_bytes()  # no extends: the file as it is


def test_simulator_serves_an_extended_profile(tmp_path):
    from tests.conftest import start_sim
    from tests.test_journal import _device, _ready

    sim = start_sim(tmp_path / "state", EM4D)
    try:
        device = _device(EM4D, sim.port)
        _ready(device)
        assert device.read("link_status").value in (0, 1, 2, 3)  # EM4D's own point, on EM4's map
        assert device.read("active_tariff").value in (1, 2, 3, 4)
        device.close()
    finally:
        sim.kill()
