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
import stat
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
    found, _ = _walk(out)
    yield from found


def irregular_entries(out: Path) -> list[str]:
    """Entries the seal cannot cover, each with what it is: symlinks, FIFOs, sockets, devices, empty folders.

    A digest covers a regular file's bytes; a symlink's target, a FIFO's writer or an empty folder's
    presence are not bytes, so a sealed run has none of them and ``verify`` names any that appear."""
    return _walk(out)[1]


def _walk(out: Path) -> tuple[list[Path], list[str]]:
    files: list[Path] = []
    irregular: list[str] = []
    for dirpath, dirnames, filenames in os.walk(out):  # never follows a symlinked folder
        dirnames.sort()
        here = Path(dirpath)
        if here != out and not dirnames and not filenames:
            irregular.append(f"{here.relative_to(out).as_posix()}: an empty directory")
        for name in [*dirnames, *filenames]:
            rel = (here / name).relative_to(out)
            mode = os.lstat(out / rel).st_mode
            if stat.S_ISDIR(mode):
                continue
            if stat.S_ISREG(mode):
                if rel.as_posix() not in (MANIFEST, SIGNATURE):
                    files.append(rel)
            else:
                irregular.append(f"{rel.as_posix()}: {_kind(mode)}, not a regular file")
    return sorted(files, key=lambda p: p.as_posix()), sorted(irregular)


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISLNK, "a symlink"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return "a special file"


def prune_empty_directories(out: Path) -> None:
    """Remove empty folders (deepest first): they carry no evidence and a seal cannot cover them."""
    for dirpath, _, _ in os.walk(out, topdown=False):
        here = Path(dirpath)
        if here != out and not os.listdir(here) and not here.is_symlink():
            here.rmdir()


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


def load_signer(signer_name: str, key_dir: Path) -> Any:
    """The named signer with the lab's key (raises SealError for an unknown signer, KeyMissing without a key)."""
    from harness import registry

    signers = registry.signers()
    if signer_name not in signers:
        raise SealError(f"unknown signer {signer_name!r}; signers: {', '.join(signers)}")
    return signers[signer_name].load(key_dir)


def seal(out: Path, signer_name: str, key_dir: Path) -> dict[str, Any]:
    """Write manifest.json and certificate.sig.json for the run in ``out``; returns the signature block."""
    if not (out / CERTIFICATE).exists():
        raise SealError(f"{out} has no {CERTIFICATE} to seal")
    signer = load_signer(signer_name, key_dir)
    prune_empty_directories(out)
    irregular = irregular_entries(out)
    if irregular:
        raise SealError(f"{out} holds entries a seal cannot cover: {'; '.join(irregular)}")
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


def fingerprint_of_pem(pem: bytes, source: str) -> str:
    """The SHA-256 fingerprint of a PEM certificate (a ``--trust`` file); SealError if it is none."""
    from cryptography import x509

    from harness.reporting.signing import cert_fingerprint

    try:
        return cert_fingerprint(x509.load_pem_x509_certificate(pem))
    except ValueError:
        raise SealError(f"{source} is not a PEM X.509 certificate (expected '-----BEGIN CERTIFICATE-----')") \
            from None


def _read_seal_files(out: Path) -> tuple[dict[str, str], dict[str, Any]]:
    """manifest.json's file table and the signature block, checked for shape (ValueError says what is wrong)."""
    manifest = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    block = json.loads((out / SIGNATURE).read_text(encoding="utf-8"))
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise ValueError(f"{MANIFEST} is not an object with a 'files' table")
    listed = manifest["files"]
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in listed.items()):
        raise ValueError(f"{MANIFEST}: every 'files' entry must map a path to a SHA-256 text")
    if not isinstance(block, dict) or not isinstance(block.get("payload", ""), str):
        raise ValueError(f"{SIGNATURE} is not an object with a text 'payload'")
    return listed, block


def verify(out: Path, trusted_cert_pem: bytes | None = None, *, trusted_fingerprint: str | None = None) -> Verification:
    """Check every file's digest and the signature; collect every problem, not just the first.

    With ``trusted_cert_pem`` or ``trusted_fingerprint`` the signer must also be that certificate."""
    from harness import registry

    if trusted_cert_pem is not None:
        trusted_fingerprint = fingerprint_of_pem(trusted_cert_pem, "the trusted certificate")
    result = Verification()
    for name in (CERTIFICATE, MANIFEST, SIGNATURE):
        if not (out / name).is_file() or (out / name).is_symlink():
            result.problems.append(f"{name} is missing")
    if result.problems:
        return result
    try:
        listed, block = _read_seal_files(out)
    except (ValueError, UnicodeDecodeError) as exc:
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
    result.problems += [f"{entry} (added after signing)" for entry in irregular_entries(out)]

    payload = signed_payload(file_sha256(out / CERTIFICATE), file_sha256(out / MANIFEST))
    claimed_text = block.get("payload", "")
    if claimed_text.encode() != payload:
        claimed = dict(line.split(" ", 1) for line in claimed_text.splitlines() if " " in line)
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
    if trusted_fingerprint is not None and trusted_fingerprint != result.fingerprint:
        result.problems.append(f"signed by {result.subject} (fingerprint {result.fingerprint}), "
                               f"not by the trusted certificate (fingerprint {trusted_fingerprint})")
    return result
