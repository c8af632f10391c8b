"""The plugin manager: built-ins and third-party plugins, all loaded from the ``harness`` group."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

import pluggy

from harness.hookspecs import (
    DriverSpec,
    FaultInjectorSpec,
    FleetSpecs,
    HarnessSpecs,
    ResultStoreSpec,
    SignerSpec,
    SuiteSpec,
)


class PluginConflict(RuntimeError):
    """Two plugins registered the same name."""


@cache
def plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager("harness")
    pm.add_hookspecs(HarnessSpecs)
    pm.add_hookspecs(FleetSpecs)
    pm.load_setuptools_entrypoints("harness")
    if not pm.get_plugins():  # running from a source tree that was never pip-installed
        from harness.plugins import builtin

        pm.register(builtin, name="builtin")
    pm.check_pending()
    return pm


def _unique(groups: list[list[Any]], key: Callable[[Any], str], what: str) -> dict[str, Any]:
    """Flatten the hook results into name -> spec; two plugins claiming one name is an error."""
    out: dict[str, Any] = {}
    for spec in (item for group in groups for item in (group or [])):
        name = key(spec)
        if name in out:
            raise PluginConflict(f"two {what} named {name!r}")
        out[name] = spec
    return out


def drivers() -> dict[str, DriverSpec]:
    return _unique(plugin_manager().hook.harness_add_drivers(), lambda s: s.protocol, "drivers for protocols")


def fault_injectors(kind: str) -> dict[str, FaultInjectorSpec]:
    groups = [[s for s in group or [] if s.kind == kind]
              for group in plugin_manager().hook.harness_add_fault_injectors()]
    return _unique(groups, lambda s: s.name, f"{kind} injectors")


def suites() -> dict[str, SuiteSpec]:
    return _unique(plugin_manager().hook.harness_add_suites(), lambda s: s.name, "suites")


def signers() -> dict[str, SignerSpec]:
    return _unique(plugin_manager().hook.harness_add_signers(), lambda s: s.name, "signers")


def result_stores() -> dict[str, ResultStoreSpec]:
    return _unique(plugin_manager().hook.harness_add_result_stores(), lambda s: s.scheme, "result stores")
