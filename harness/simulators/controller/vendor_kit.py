"""The vendor's side of the simulated controller: its signing key and the images it ships.

On first start the simulator plays vendor once: it makes a signing key, keeps only the public half
as the device's trust anchor (``STATE_DIR/device/vendor.pub``, the "ROM" key Install verifies
with), and writes the lab's copy of what a vendor hands out into ``STATE_DIR/vendor/``: the
running version, the next one, one below the minimum version, one whose health check fails, and
``vendor.pub``. The private key is dropped afterwards — nobody can sign another image for this
device, exactly as a lab cannot. A rig names these files under ``firmware:``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from harness.firmware.image import (
    PublicKey,
    build_image,
    generate_signing_key,
    load_public_key,
    public_key_pem,
    version_key,
)

PAYLOAD_BYTES = 512 * 1024  # a small controller firmware; transfer and flashing take visible time


@dataclass(frozen=True)
class VendorKit:
    trust_anchor: PublicKey
    factory_image: bytes  # what slot A holds when the device leaves the factory (needed on first start only)
    files: dict[str, Path]  # current, next, below_min, unhealthy -> path


def bump(version: str, minor: int) -> str:
    parts = list(version_key(version)[:3])
    return f"{parts[0]}.{parts[1] + minor}.0"


def below(version: str) -> str:
    major, minor = version_key(version)[:2]
    return f"{major}.{minor - 1}.0" if minor > 0 else f"{max(major - 1, 0)}.9.0"


def _payload(version: str) -> bytes:
    return random.Random(f"firmware {version}").randbytes(PAYLOAD_BYTES)


def image_prefix(model: str) -> str:
    """pc1 for TEK-SIM-PC1: the file names the contract's rig example uses."""
    return model.rsplit("-", 1)[-1].lower()


def vendor_kit(state_dir: Path, vendor: str, model: str, running: str, min_version: str | None,
               algorithm: str) -> VendorKit:
    """Make the kit on first start; read it back after (the trust anchor never changes)."""
    device_dir, kit_dir = state_dir / "device", state_dir / "vendor"
    anchor = device_dir / "vendor.pub"
    prefix = image_prefix(model)
    versions = {"current": running, "next": bump(running, 1), "unhealthy": bump(running, 2),
                "below_min": below(min_version or running)}
    files = {"current": kit_dir / f"{prefix}-{versions['current']}.img",
             "next": kit_dir / f"{prefix}-{versions['next']}.img",
             "below_min": kit_dir / f"{prefix}-{versions['below_min']}.img",
             "unhealthy": kit_dir / f"{prefix}-{versions['unhealthy']}-bad.img"}
    if not anchor.exists():
        key = generate_signing_key(algorithm)
        kit_dir.mkdir(parents=True, exist_ok=True)
        device_dir.mkdir(parents=True, exist_ok=True)
        for name, path in files.items():
            path.write_bytes(build_image(vendor=vendor, model=model, version=versions[name],
                                         payload=_payload(versions[name]), key=key,
                                         health="fail" if name == "unhealthy" else "ok"))
        (kit_dir / "vendor.pub").write_bytes(public_key_pem(key))
        tmp = anchor.with_suffix(".tmp")
        tmp.write_bytes(public_key_pem(key))
        tmp.replace(anchor)  # last: a kit is complete once the device has its anchor
    current = files["current"].read_bytes() if files["current"].exists() else b""
    return VendorKit(load_public_key(anchor.read_bytes()), current, files)
