"""The plugin manager: built-ins and third-party plugins, all loaded from the ``harness`` group."""

from __future__ import annotations

from functools import cache

import pluggy

from harness.hookspecs import DriverSpec, FaultInjectorSpec, HarnessSpecs, SuiteSpec


class PluginConflict(RuntimeError):
    """Two plugins registered the same name."""


@cache
def plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager("harness")
    pm.add_hookspecs(HarnessSpecs)
    pm.load_setuptools_entrypoints("harness")
    if not pm.get_plugins():  # running from a source tree that was never pip-installed
        from harness.plugins import builtin

        pm.register(builtin, name="builtin")
    pm.check_pending()
    return pm


def _flatten(results: list[list]) -> list:
    return [item for group in results for item in (group or [])]


def drivers() -> dict[str, DriverSpec]:
    out: dict[str, DriverSpec] = {}
    for spec in _flatten(plugin_manager().hook.harness_add_drivers()):
        if spec.protocol in out:
            raise PluginConflict(f"two drivers for protocol {spec.protocol!r}")
        out[spec.protocol] = spec
    return out


def fault_injectors(kind: str) -> dict[str, FaultInjectorSpec]:
    out: dict[str, FaultInjectorSpec] = {}
    for spec in _flatten(plugin_manager().hook.harness_add_fault_injectors()):
        if spec.kind != kind:
            continue
        if spec.name in out:
            raise PluginConflict(f"two {kind} injectors named {spec.name!r}")
        out[spec.name] = spec
    return out


def suites() -> dict[str, SuiteSpec]:
    out: dict[str, SuiteSpec] = {}
    for spec in _flatten(plugin_manager().hook.harness_add_suites()):
        if spec.name in out:
            raise PluginConflict(f"two suites named {spec.name!r}")
        out[spec.name] = spec
    return out
