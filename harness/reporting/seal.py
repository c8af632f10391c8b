"""Sealing a run's evidence: a SHA-256 manifest of every file and a detached signature.

The signature covers certificate.json and manifest.json (their digests, in a fixed text), and the
manifest covers every other file of the output directory, so changing, removing or adding any
byte of evidence after the run is found by ``harness verify`` — which names each problem rather
than answering a bare "invalid".
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MANIFEST, SIGNATURE, CERTIFICATE = "manifest.json", "certificate.sig.json", "certificate.json"
MANIFEST_FORMAT, SIGNATURE_FORMAT = "tek-harness-manifest/1", "tek-harness-signature/1"


class SealError(Exception):
    """The run cannot be sealed or verified at all (no certificate, no key …)."""


def evidence_files(out: Path) -> Iterator[Path]:
    """Every regular file of the run except the manifest and the signature, sorted, as relative paths."""
    found = []
    for dirpath, dirnames, filenames in os.walk(out):
        dirnames.sort()
        for name in filenames:
            rel = (Path(dirpath) / name).relative_to(out)
            if rel.as_posix() not in (MANIFEST, SIGNATURE) and (out / rel).is_file():
                found.append(rel)
    yield from sorted(found, key=lambda p: p.as_posix())


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def build_manifest(out: Path) -> dict[str, Any]:
    return {"format": MANIFEST_FORMAT, "algorithm": "sha256",
            "files": {p.as_posix(): file_sha256(out / p) for p in evidence_files(out)}}


def signed_payload(certificate_digest: str, manifest_digest: str) -> bytes:
    """What the signature covers: both digests in a fixed text, so nothing depends on JSON layout."""
    return f"{CERTIFICATE} {certificate_digest}\n{MANIFEST} {manifest_digest}\n".encode()


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


def seal(out: Path, signer_name: str, key_dir: Path) -> dict[str, Any]:
    """Write manifest.json and certificate.sig.json for the run in ``out``; returns the signature block."""
    from harness import registry

    if not (out / CERTIFICATE).exists():
        raise SealError(f"{out} has no {CERTIFICATE} to seal")
    signers = registry.signers()
    if signer_name not in signers:
        raise SealError(f"unknown signer {signer_name!r}; signers: {', '.join(signers)}")
    signer = signers[signer_name].load(key_dir)
    for stale in (MANIFEST, SIGNATURE):  # a re-seal (harness report) replaces both
        (out / stale).unlink(missing_ok=True)
    manifest = json.dumps(build_manifest(out), indent=1, sort_keys=True) + "\n"
    _write_atomic(out / MANIFEST, manifest)
    payload = signed_payload(file_sha256(out / CERTIFICATE), hashlib.sha256(manifest.encode()).hexdigest())
    block = {"format": SIGNATURE_FORMAT, "signer": signer_name, "payload": payload.decode(),
             **signer.sign(payload)}
    _write_atomic(out / SIGNATURE, json.dumps(block, indent=1) + "\n")
    return block


@dataclass
class Verification:
    """What ``harness verify`` found. ``problems`` empty means the seal holds."""

    signer: str = ""
    subject: str = ""
    fingerprint: str = ""
    files: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(out: Path, trusted_cert_pem: bytes | None = None) -> Verification:
    """Check every file's digest and the signature; collect every problem, not just the first."""
    from harness import registry

    result = Verification()
    for name in (CERTIFICATE, MANIFEST, SIGNATURE):
        if not (out / name).is_file():
            result.problems.append(f"{name} is missing")
    if result.problems:
        return result
    try:
        manifest = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
        block = json.loads((out / SIGNATURE).read_text(encoding="utf-8"))
        listed: dict[str, str] = manifest["files"]
    except (ValueError, KeyError, TypeError) as exc:
        result.problems.append(f"manifest.json or certificate.sig.json is not readable: {exc}")
        return result
    result.files = len(listed)
    present = {p.as_posix() for p in evidence_files(out)}
    for rel, want in sorted(listed.items()):
        if rel not in present:
            result.problems.append(f"{rel}: missing (listed in the manifest)")
        elif file_sha256(out / rel) != want:
            result.problems.append(f"{rel}: changed after signing (SHA-256 differs from the manifest)")
    result.problems += [f"{rel}: added after signing (not in the manifest)" for rel in sorted(present - set(listed))]

    payload = signed_payload(file_sha256(out / CERTIFICATE), file_sha256(out / MANIFEST))
    if block.get("payload", "").encode() != payload:
        claimed = dict(line.split(" ", 1) for line in block.get("payload", "").splitlines() if " " in line)
        for name in (CERTIFICATE, MANIFEST):
            if claimed.get(name) != file_sha256(out / name):
                result.problems.append(f"{name}: does not match the digest that was signed")
    result.signer = str(block.get("signer", ""))
    result.subject = str(block.get("subject", ""))
    result.fingerprint = str(block.get("fingerprint_sha256", ""))
    spec = registry.signers().get(result.signer)
    if spec is None:
        result.problems.append(f"signed with {result.signer!r}, a signer this installation does not have")
        return result
    from harness.reporting.signing import SignatureInvalid

    try:
        result.subject = spec.verify(payload, block)
    except SignatureInvalid as exc:
        result.problems.append(f"signature: {exc}")
    if trusted_cert_pem is not None:
        from cryptography import x509

        from harness.reporting.signing import cert_fingerprint

        trusted = cert_fingerprint(x509.load_pem_x509_certificate(trusted_cert_pem))
        if trusted != result.fingerprint:
            result.problems.append(f"signed by {result.subject} (fingerprint {result.fingerprint}), "
                                   f"not by the trusted certificate (fingerprint {trusted})")
    return result
