"""Built-ins arrive through the same entry-point group and hooks a third-party plugin would use."""

from __future__ import annotations

from importlib import metadata

import pluggy

from harness import registry
from harness.hookspecs import DriverSpec, HarnessSpecs, hookimpl


def test_builtin_plugin_is_an_entry_point():
    eps = {ep.name: ep.value for ep in metadata.entry_points(group="harness")}
    assert eps.get("builtin") == "harness.plugins.builtin"
    assert any(ep.value == "harness.pytest_plugin" for ep in metadata.entry_points(group="pytest11"))


def test_registry_offers_builtins():
    assert "modbus" in registry.drivers()
    assert {"process"} <= set(registry.fault_injectors("power"))
    assert {"simulator", "wall"} <= set(registry.fault_injectors("time"))
    assert {"registers", "tariffs", "nvm", "clock"} <= set(registry.suites())


def test_a_third_party_driver_plugs_in_through_the_hook():
    class VendorPlugin:
        @hookimpl
        def harness_add_drivers(self):
            return [DriverSpec("dlms", lambda *a, **k: None, "a vendor's DLMS driver")]

    pm = pluggy.PluginManager("harness")
    pm.add_hookspecs(HarnessSpecs)
    pm.register(VendorPlugin())
    pm.check_pending()
    specs = [s for group in pm.hook.harness_add_drivers() for s in group]
    assert [s.protocol for s in specs] == ["dlms"]


def test_cli_lists_suites_and_checks():
    from tests.conftest import run_cli

    res = run_cli("suites")
    assert res.returncode == 0, res.stderr
    for n in range(1, 12):
        assert f"KZ-95-{n:02d}" in res.stdout
