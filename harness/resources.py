"""Where the built-in profiles and rigs are: beside the package in a checkout or an editable
install, or inside it (``harness/_data``) in a wheel."""

from __future__ import annotations

from pathlib import Path

_PKG = Path(__file__).resolve().parent


def _dir(name: str) -> Path:
    for candidate in (_PKG / "_data" / name, _PKG.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"built-in {name}/ not found beside or inside {_PKG}")


def builtin_profile(filename: str) -> Path:
    return _dir("device_profiles") / filename


def builtin_rig(filename: str = "sim-meter.yaml") -> Path:
    return _dir("rigs") / filename
