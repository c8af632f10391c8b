"""tek-image-v1: a signed firmware image — build, parse, verify.

Layout (docs/opcua.md)::

    b"TEKIMG1\\n" | u32 BE header length | header (UTF-8 JSON) | payload | u32 BE signature length | signature

The header names vendor, model, version, payload_sha256, payload_len and health ("ok" | "fail",
what the device's post-activation self-test will find). The signature — Ed25519, or ECDSA P-256
with SHA-256 (DER) — covers every byte before the signature length, so header and payload are
both protected. A signature length of 0 is an unsigned image.

Parsing, signature and integrity are separate steps on purpose: a device verifies them in some
order, and a defective one skips one of them; the ``firmware`` fault injector forges images that
fail exactly one. Every error says which part of the image is wrong.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
from dataclasses import asdict, dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

FORMAT = "tek-image-v1"
MAGIC = b"TEKIMG1\n"
SIGNATURE_ALGORITHMS = ("ed25519", "ecdsa-p256")
HEALTH = ("ok", "fail")
MAX_HEADER_BYTES = 64 * 1024
_LEN = struct.Struct(">I")
_VERSION = re.compile(r"^\d+(\.\d+){0,3}$")

PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey
PublicKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey


class ImageError(ValueError):
    """The image must not be installed; the message says why."""


class ImageFormatError(ImageError):
    """The bytes are not a well-formed tek-image-v1 image (bad magic, truncated, bad header)."""


class UnsignedImageError(ImageError):
    """The image carries no signature."""


class ImageSignatureError(ImageError):
    """The signature does not verify with the vendor key (another signer, or the signed bytes changed)."""


class ImageIntegrityError(ImageError):
    """The payload does not match the length or SHA-256 its header declares."""


@dataclass(frozen=True)
class ImageHeader:
    vendor: str
    model: str
    version: str
    payload_sha256: str
    payload_len: int
    health: str = "ok"

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> ImageHeader:
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ImageFormatError(f"header is not UTF-8 JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ImageFormatError("header is not a JSON object")
        missing = [f for f in ("vendor", "model", "version", "payload_sha256", "payload_len") if f not in data]
        if missing:
            raise ImageFormatError(f"header lacks {', '.join(missing)}")
        unknown = sorted(set(data) - {"vendor", "model", "version", "payload_sha256", "payload_len", "health"})
        if unknown:
            raise ImageFormatError(f"header has unknown field(s) {', '.join(unknown)}")
        header = cls(vendor=data["vendor"], model=data["model"], version=data["version"],
                     payload_sha256=data["payload_sha256"], payload_len=data["payload_len"],
                     health=data.get("health", "ok"))
        header.validate()
        return header

    def validate(self) -> None:
        for name in ("vendor", "model", "version", "payload_sha256", "health"):
            if not isinstance(getattr(self, name), str):
                raise ImageFormatError(f"header field {name} is not a string")
        if not _VERSION.match(self.version):
            raise ImageFormatError(f"header version {self.version!r} is not a dotted number like 2.1.0")
        if not isinstance(self.payload_len, int) or isinstance(self.payload_len, bool) or self.payload_len < 0:
            raise ImageFormatError(f"header payload_len {self.payload_len!r} is not a non-negative integer")
        if not re.fullmatch(r"[0-9a-f]{64}", self.payload_sha256):
            raise ImageFormatError("header payload_sha256 is not 64 lower-case hex digits")
        if self.health not in HEALTH:
            raise ImageFormatError(f"header health {self.health!r} is not one of {', '.join(HEALTH)}")


@dataclass(frozen=True)
class FirmwareImage:
    header: ImageHeader
    payload: bytes
    signature: bytes
    signed: bytes  # every byte the signature covers: magic, header length, header, payload

    @property
    def version(self) -> str:
        return self.header.version

    def to_bytes(self) -> bytes:
        return assemble(self.signed, self.signature)


def version_key(version: str) -> tuple[int, ...]:
    """Dotted versions compare numerically: 2.10.0 > 2.9.1."""
    if not _VERSION.match(version):
        raise ValueError(f"{version!r} is not a dotted version like 2.1.0")
    parts = [int(p) for p in version.split(".")]
    return tuple(parts + [0] * (4 - len(parts)))


# ---- keys ------------------------------------------------------------------------------------------
def generate_signing_key(algorithm: str = "ed25519") -> PrivateKey:
    if algorithm == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    if algorithm == "ecdsa-p256":
        return ec.generate_private_key(ec.SECP256R1())
    raise ValueError(f"unknown signature algorithm {algorithm!r}; known: {', '.join(SIGNATURE_ALGORITHMS)}")


def key_algorithm(key: PrivateKey | PublicKey) -> str:
    if isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        return "ed25519"
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1":
        return "ecdsa-p256"
    raise ValueError(f"unsupported key {type(key).__name__}; tek-image-v1 signs with Ed25519 or ECDSA P-256")


def public_key_pem(key: PrivateKey | PublicKey) -> bytes:
    public = key.public_key() if hasattr(key, "private_bytes") else key
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_public_key(pem: bytes) -> PublicKey:
    key = serialization.load_pem_public_key(pem)
    key_algorithm(key)  # type: ignore[arg-type]
    return key  # type: ignore[return-value]


def private_key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def load_private_key(pem: bytes) -> PrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    key_algorithm(key)  # type: ignore[arg-type]
    return key  # type: ignore[return-value]


def sign(data: bytes, key: PrivateKey) -> bytes:
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(data)
    return key.sign(data, ec.ECDSA(hashes.SHA256()))


# ---- build and parse -------------------------------------------------------------------------------
def signed_part(header: ImageHeader, payload: bytes) -> bytes:
    raw = header.to_bytes()
    return MAGIC + _LEN.pack(len(raw)) + raw + payload


def assemble(signed: bytes, signature: bytes) -> bytes:
    return signed + _LEN.pack(len(signature)) + signature


def build_image(*, vendor: str, model: str, version: str, payload: bytes, key: PrivateKey | None,
                health: str = "ok") -> bytes:
    """A complete image; ``key=None`` builds an unsigned one (for tests and forgeries)."""
    header = ImageHeader(vendor=vendor, model=model, version=version,
                         payload_sha256=hashlib.sha256(payload).hexdigest(), payload_len=len(payload), health=health)
    header.validate()
    signed = signed_part(header, payload)
    return assemble(signed, sign(signed, key) if key is not None else b"")


def parse_image(data: bytes) -> FirmwareImage:
    """Split an image into its parts; ImageFormatError names the first part that is wrong."""
    if not data.startswith(MAGIC):
        raise ImageFormatError(f"not a {FORMAT} image: it does not start with {MAGIC!r}")
    pos = len(MAGIC)
    if len(data) < pos + 4:
        raise ImageFormatError(f"truncated: {len(data)} bytes end inside the header length")
    (hlen,) = _LEN.unpack_from(data, pos)
    pos += 4
    if hlen > MAX_HEADER_BYTES:
        raise ImageFormatError(f"header length {hlen} exceeds {MAX_HEADER_BYTES} bytes")
    if len(data) < pos + hlen:
        raise ImageFormatError(f"truncated: {len(data)} bytes end inside the {hlen}-byte header")
    header = ImageHeader.from_bytes(data[pos:pos + hlen])
    pos += hlen
    end = pos + header.payload_len
    if len(data) < end + 4:
        raise ImageFormatError(f"truncated: {len(data)} bytes, but the header declares a {header.payload_len}-byte "
                               f"payload and a signature after it ({end + 4} bytes at least)")
    payload = data[pos:end]
    (slen,) = _LEN.unpack_from(data, end)
    if len(data) != end + 4 + slen:
        what = "truncated inside the signature" if len(data) < end + 4 + slen else "trailing bytes after the signature"
        raise ImageFormatError(f"{what}: {len(data)} bytes, expected {end + 4 + slen}")
    return FirmwareImage(header=header, payload=payload, signature=data[end + 4:], signed=data[:end])


def check_signature(image: FirmwareImage, public_key: PublicKey) -> None:
    if not image.signature:
        raise UnsignedImageError("image is unsigned (signature length 0)")
    try:
        if isinstance(public_key, ed25519.Ed25519PublicKey):
            public_key.verify(image.signature, image.signed)
        else:
            public_key.verify(image.signature, image.signed, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise ImageSignatureError(f"signature does not verify with the vendor's {key_algorithm(public_key)} key "
                                  "(signed by another key, or header/payload changed after signing)") from None


def check_integrity(image: FirmwareImage) -> None:
    if len(image.payload) != image.header.payload_len:
        raise ImageIntegrityError(f"payload is {len(image.payload)} bytes, header declares {image.header.payload_len}")
    digest = hashlib.sha256(image.payload).hexdigest()
    if digest != image.header.payload_sha256:
        raise ImageIntegrityError(f"payload SHA-256 {digest[:16]}… differs from the header's "
                                  f"{image.header.payload_sha256[:16]}…")


def verify_image(data: bytes, public_key: PublicKey) -> FirmwareImage:
    """Parse, then signature, then integrity: what a correct device does before it installs."""
    image = parse_image(data)
    check_signature(image, public_key)
    check_integrity(image)
    return image
