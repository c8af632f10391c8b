"""The ``firmware`` fault injector for tek-image-v1: bad images forged from one valid image.

Each forgery breaks exactly one thing a device must check before it installs (cl. 70):

- ``unsigned``: header and payload intact, no signature;
- ``wrongly_signed``: intact, but signed with a fresh key that is not the vendor's;
- ``truncated``: cut inside the payload (a transfer that stopped early);
- ``corrupted``: payload bytes flipped, the vendor's signature kept (bit rot, tampering in transit).

The functions are pure (bytes in, bytes out); ``FirmwareForger`` is what the bench hands a suite:
it writes each forgery next to the run's evidence and records it in the fault log, so a report
shows which image the device was offered.
"""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

from harness.fault_injection.record import FaultLog
from harness.firmware.image import FORMAT, assemble, generate_signing_key, parse_image, sign

FORGERIES = ("unsigned", "wrongly_signed", "truncated", "corrupted")
ED25519_SIGNATURE_BYTES = 64


def unsigned(image: bytes) -> bytes:
    """The same image with its signature removed (signature length 0)."""
    return assemble(parse_image(image).signed, b"")


def wrongly_signed(image: bytes, algorithm: str | None = None) -> bytes:
    """The same header and payload signed with a fresh key of the vendor's algorithm (guessed from the
    signature's length when not given: Ed25519 signatures are 64 bytes, ECDSA DER ones are not)."""
    parsed = parse_image(image)
    if algorithm is None:
        algorithm = "ed25519" if len(parsed.signature) in (0, ED25519_SIGNATURE_BYTES) else "ecdsa-p256"
    return assemble(parsed.signed, sign(parsed.signed, generate_signing_key(algorithm)))


def truncated(image: bytes, fraction: float = 0.5) -> bytes:
    """The image cut inside its payload, after ``fraction`` of it (no signature left)."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError("fraction must be in [0, 1)")
    parsed = parse_image(image)
    start = len(parsed.signed) - len(parsed.payload)
    return image[:start + int(len(parsed.payload) * fraction)]


def corrupted(image: bytes, seed: int = 1, flips: int = 16) -> bytes:
    """Payload bytes inverted at ``flips`` seeded positions; header and signature untouched."""
    parsed = parse_image(image)
    if not parsed.payload:
        raise ValueError("the image has an empty payload: nothing to corrupt")
    start = len(parsed.signed) - len(parsed.payload)
    data = bytearray(image)
    rng = random.Random(seed)
    for pos in rng.sample(range(len(parsed.payload)), min(flips, len(parsed.payload))):
        data[start + pos] ^= 0xFF
    return bytes(data)


class FirmwareForger:
    """Forges bad tek-image-v1 images for one DUT and records each in the run's fault log."""

    image_format = FORMAT
    kinds = FORGERIES

    def __init__(self, out_dir: Path | None = None, faults: FaultLog | None = None, dut: str = "",
                 seed: int = 1, algorithm: str | None = None) -> None:
        self.out_dir, self.faults, self.dut, self.seed, self.algorithm = out_dir, faults, dut, seed, algorithm

    def forge(self, kind: str, image: bytes) -> bytes:
        if kind == "unsigned":
            return unsigned(image)
        if kind == "wrongly_signed":
            return wrongly_signed(image, self.algorithm)
        if kind == "truncated":
            return truncated(image)
        if kind == "corrupted":
            return corrupted(image, seed=self.seed)
        raise ValueError(f"unknown forgery {kind!r}; {self.image_format} forgeries: {', '.join(self.kinds)}")

    def version_of(self, image: bytes) -> str:
        """The version a valid image of this format carries (what the device should report running it), so a
        suite knows the rig's images without knowing their format."""
        return parse_image(image).version

    def forge_file(self, kind: str, source: Path) -> Path:
        """Forge from an image file; the forgery is written to ``out_dir`` (evidence) and its path returned."""
        if self.out_dir is None:
            raise ValueError("this forger has no output directory; use forge() for bytes")
        original = source.read_bytes()
        forged = self.forge(kind, original)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        target = self.out_dir / f"{source.stem}-{kind}.img"
        target.write_bytes(forged)
        self._record(kind, source, original, forged, target)
        return target

    def _record(self, kind: str, source: Path, original: bytes, forged: bytes, target: Path) -> None:
        if self.faults is None:
            return
        event = self.faults.begin(self.dut, "firmware", kind, image_format=self.image_format, source=str(source),
                                  source_sha256=hashlib.sha256(original).hexdigest(), forged=str(target),
                                  forged_sha256=hashlib.sha256(forged).hexdigest(), bytes=len(forged))
        self.faults.end(event)  # a forged file is made in an instant; offering it to the device is the suite's
