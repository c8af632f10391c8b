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
