"""Profile and Rig models and their YAML loading (file:line errors, exit code 2).

The names are loaded on first use (PEP 562): a simulator needs only ``harness.config.errors`` or
``harness.config.extends``, and importing those went through this package, which made it import every
pydantic model of rigs and profiles (~0.3 s CPU per simulator start, paid again on every power cut).
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.config.errors import ConfigError, ConfigProblem
    from harness.config.loading import LoadedRig, json_schema, load_any, load_profile, load_rig
    from harness.config.profile import Profile
    from harness.config.rig import Dut, Rig

_HOME = {"ConfigError": "errors", "ConfigProblem": "errors", "LoadedRig": "loading", "json_schema": "loading",
         "load_any": "loading", "load_profile": "loading", "load_rig": "loading", "Profile": "profile",
         "Dut": "rig", "Rig": "rig"}
__all__ = ["ConfigError", "ConfigProblem", "Dut", "LoadedRig", "Profile", "Rig", "json_schema", "load_any",
           "load_profile", "load_rig"]


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
    globals()[name] = value
    return value


class _Package(types.ModuleType):
    """The submodule ``load_profile`` (interval-data layouts) is named like the function ``load_profile``: importing it
    binds the module to the package's name, which eagerly imported functions used to overwrite again. The function
    keeps the name, as before."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _HOME and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
