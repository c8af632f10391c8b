"""Load profiles and rigs from YAML into validated models, with file:line errors."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from harness.config.documentation import BASE_DIR
from harness.config.errors import ConfigError, ConfigProblem, shorten, show_value
from harness.config.extends import ProfileSource, resolve_profile
from harness.config.profile import Profile
from harness.config.rig import Dut, Rig, wall_waits_too_long
from harness.config.yaml_source import YamlSource

M = TypeVar("M", bound=BaseModel)


def _validate(model: type[M], source: YamlSource | ProfileSource) -> M:
    if not isinstance(source.data, dict):
        raise ConfigError.single(source.path, f"expected a mapping at the top (a {model.__name__})", 1)
    try:
        # Paths inside a file (documents) are relative to that file: the models resolve them with this.
        return model.model_validate(source.data, context={BASE_DIR: source.path.parent.resolve()})
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = [p for p in err["loc"] if not isinstance(p, str) or not p.startswith("function-")]
            # a profile that extends another: the file (of the chain) that declared the offending key
            path, line = source.locate(loc) if isinstance(source, ProfileSource) else (source.path, source.line_of(loc))
            problems.append(
                ConfigProblem(
                    path=path,
                    line=line,
                    field=".".join(str(p) for p in loc) or model.__name__,
                    message=_explain(err),
                )
            )
        raise ConfigError(problems) from None


def _explain(err: dict[str, Any]) -> str:
    """pydantic's message, with the offending value for the common cases."""
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        return "unknown field (typo?); not part of the schema — see `harness schema`"
    if err["type"] == "missing":
        return "required field is missing"
    if "input" in err and not isinstance(err["input"], dict | list):
        shown = show_value(err["input"])
        return f"{msg.replace(repr(err['input']), shown)} (got {shown})"  # pydantic may quote it whole too
    return msg


def load_profile(path: Path) -> Profile:
    return _validate(Profile, resolve_profile(path))


@dataclass
class LoadedRig:
    """A rig with each DUT's profile loaded, and the files it came from (kept as evidence)."""

    path: Path
    rig: Rig
    profiles: dict[str, Profile]
    profile_paths: dict[str, Path]
    profile_sources: dict[str, ProfileSource] = field(default_factory=dict)
    # An AMR server's field meters: DUT name -> meter name -> (profile, its path); not DUTs of their own.
    field_profiles: dict[str, dict[str, tuple[Profile, Path]]] = field(default_factory=dict)

    def dut(self, name: str) -> Dut:
        return self.rig.duts[name]

    def profile_evidence(self, dut: str) -> bytes:
        """The profile as used: the file, or the resolved profile of one that extends another."""
        source = self.profile_sources.get(dut)
        return source.evidence_bytes() if source is not None else self.profile_paths[dut].read_bytes()

    def profile_hash(self, dut: str) -> str:
        """SHA-256 of the profile as used (``profile_evidence``), for the certificate's DUT identity."""
        return hashlib.sha256(self.profile_evidence(dut)).hexdigest()


def load_rig(path: Path) -> LoadedRig:
    source = YamlSource.load(path)
    rig = _validate(Rig, source)
    problems: list[ConfigProblem] = [
        ConfigProblem(path, source.line_of(loc), ".".join(map(str, loc)), why) for loc, why in wall_waits_too_long(rig)]
    profiles: dict[str, Profile] = {}
    paths: dict[str, Path] = {}
    sources: dict[str, ProfileSource] = {}
    field_profiles: dict[str, dict[str, tuple[Profile, Path]]] = {}

    def profile_of(dut: Dut, loc: list[str | int]) -> tuple[Profile, Path, ProfileSource] | None:
        ppath = (path.parent / dut.profile).resolve()
        try:
            psource = resolve_profile(ppath)
            return _validate(Profile, psource), ppath, psource
        except ConfigError as exc:
            unread = [p for p in exc.problems if p.path == ppath and p.line is None]
            if unread:  # the file itself could not be read (missing, a FIFO, a name too long): the rig's line
                why = "not found" if unread[0].message == "file not found" else unread[0].message
                problems.append(ConfigProblem(path, source.line_of([*loc, "profile"]), ".".join(map(str, loc))
                                              + ".profile", f"profile file {shorten(str(ppath))} {why}"))
            else:
                problems.extend(exc.problems)
            return None

    for name, dut in rig.duts.items():
        if (loaded := profile_of(dut, ["duts", name])) is not None:
            profiles[name], paths[name], sources[name] = loaded
        for meter, spec in dut.field.items():
            loc: list[str | int] = ["duts", name, "field", meter]
            if (got := profile_of(spec, loc)) is None:
                continue
            if got[0].kind.value not in ("electricity_meter", "heat_meter"):
                problems.append(ConfigProblem(path, source.line_of([*loc, "profile"]), ".".join(map(str, loc)),
                                              f"a field meter's profile is of kind {got[0].kind.value}; expected "
                                              "electricity_meter or heat_meter"))
            field_profiles.setdefault(name, {})[meter] = got[0], got[1]
    if problems:
        raise ConfigError(problems)
    return LoadedRig(path.resolve(), rig, profiles, paths, sources, field_profiles)


def load_any(path: Path) -> Profile | LoadedRig:
    """For `harness check`: a file with a top-level `duts` is a rig, anything else a profile."""
    source = YamlSource.load(path)
    if isinstance(source.data, dict) and "duts" in source.data:
        return load_rig(path)
    return _validate(Profile, resolve_profile(path, source))


def json_schema(kind: str) -> str:
    model = {"profile": Profile, "rig": Rig}[kind]
    schema = model.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = f"tek-harness {kind}"
    if kind == "profile":  # resolved before validation (config/extends.py), so no field of the model
        schema["properties"]["extends"] = {"type": "string", "description": "path of the profile this one "
                                           "extends (relative to this file); state only what differs"}
    return json.dumps(schema, indent=2)
