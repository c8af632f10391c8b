"""Profile and Rig models and their YAML loading (file:line errors, exit code 2)."""

from harness.config.errors import ConfigError, ConfigProblem
from harness.config.loading import LoadedRig, json_schema, load_any, load_profile, load_rig
from harness.config.profile import Profile
from harness.config.rig import Dut, Rig

__all__ = ["ConfigError", "ConfigProblem", "Dut", "LoadedRig", "Profile", "Rig", "json_schema", "load_any",
           "load_profile", "load_rig"]
