"""Signers: who vouches for a certificate (cl. 16 — submitted data carry an electronic signature).

A signer is a plugin (``harness_add_signers``): it signs a payload with a lab's key and verifies
such a signature later from what the signature file carries. The built-in one uses Ed25519 with
a self-signed X.509 certificate (``harness keys init``); a national-PKI signer — Kazakhstan's NCA
keys, say — plugs in through the same hook and is chosen with ``--signer``.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import fcntl
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from harness.durable import fsync_dir
from harness.hookspecs import SignerSpec

KEY_FILE, CERT_FILE, LOCK_FILE = "lab-key.pem", "lab-cert.pem", ".lock"
BUILTIN_SIGNER = "ed25519-x509"


class SignatureInvalid(Exception):
    """The signature does not verify; the message says what is wrong."""


class KeyMissing(Exception):
    """No lab key where one was expected; the message says how to make one."""


class Signer(Protocol):
    def sign(self, payload: bytes) -> dict[str, Any]:
        """Fields for the signature file: at least ``signature``, ``subject``, ``fingerprint_sha256``."""


def default_key_dir() -> Path:
    """``$HARNESS_KEY_DIR``, else the user's config directory: a lab key outlives any one run."""
    env = os.environ.get("HARNESS_KEY_DIR")
    if env:
        return Path(env)
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "tek-harness" / "lab-key"


# ---- the lab key directory: one pair, never split ----------------------------------------------
@contextlib.contextmanager
def key_dir_lock(key_dir: Path, *, exclusive: bool) -> Iterator[None]:
    """flock on ``<key dir>/.lock``: one maker at a time (exclusive), readers see a whole pair (shared)."""
    try:
        key_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(key_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        if exclusive:
            raise
        yield  # a read-only key directory (a key on read-only media): nobody makes keys there; the pair check
        return  # before signing still guards
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)  # releases the lock


def write_private(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write ``data`` to ``path`` through a fresh temporary file (O_EXCL, made 0600 whatever the umask or a
    stale ``.tmp`` left by a crash), fsynced, then renamed over ``path``."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        os.write(fd, data)
        os.fsync(fd)
        os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


# ---- the built-in Ed25519 + X.509 signer ------------------------------------------------------
def init_ed25519(key_dir: Path, name: str, *, force: bool = False, valid_days: int = 3650) -> str:
    """A new Ed25519 key (file mode 0600) and a self-signed certificate naming the lab.

    Made under the key directory's exclusive lock: of two first runs at once, one makes the pair and the
    other gets FileExistsError (``harness.reporting.finalize.ensure_key`` takes that as "made")."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.x509.oid import NameOID

    key_path, cert_path = key_dir / KEY_FILE, key_dir / CERT_FILE
    with key_dir_lock(key_dir, exclusive=True):
        if key_path.exists() and not force:  # a certificate without its key (a crash between the two) is made anew
            raise FileExistsError(f"{key_path} exists; use --force to replace it (signatures made with it will "
                                  f"still verify, they carry their certificate)")
        key = Ed25519PrivateKey.generate()
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name),
                             x509.NameAttribute(NameOID.ORGANIZATION_NAME, name)])
        now = dt.datetime.now(dt.UTC)
        cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
                .not_valid_after(now + dt.timedelta(days=valid_days))
                .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=True,
                                             key_encipherment=False, data_encipherment=False, key_agreement=False,
                                             key_cert_sign=False, crl_sign=False, encipher_only=False,
                                             decipher_only=False), critical=True)
                .sign(key, None))
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        # The certificate first, then the key: a crash between the two leaves a certificate without its key
        # (made anew by the next init) or, on --force, a pair that does not match, which every load refuses.
        write_private(cert_path, cert.public_bytes(serialization.Encoding.PEM), mode=0o644)
        write_private(key_path, pem)
        fsync_dir(key_dir)
    return f"{cert.subject.rfc4514_string()}, SHA-256 fingerprint {cert_fingerprint(cert)}"


def cert_fingerprint(cert: Any) -> str:
    from cryptography.hazmat.primitives import hashes

    return cert.fingerprint(hashes.SHA256()).hex()


class Ed25519Signer:
    def __init__(self, key_dir: Path) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        key_path, cert_path = key_dir / KEY_FILE, key_dir / CERT_FILE
        if not key_path.exists() or not cert_path.exists():
            raise KeyMissing(f"no lab key in {key_dir}: make one with `harness keys init --name \"<your lab>\"`")
        try:
            with key_dir_lock(key_dir, exclusive=False):
                key_pem, self.cert_pem = key_path.read_bytes(), cert_path.read_bytes()
        except OSError as exc:
            raise KeyMissing(f"the lab key in {key_dir} cannot be read: {exc.strerror or exc}") from None
        try:
            key = serialization.load_pem_private_key(key_pem, password=None)
            self.cert = x509.load_pem_x509_certificate(self.cert_pem)
        except (ValueError, TypeError) as exc:
            raise KeyMissing(f"the lab key in {key_dir} is not readable ({exc}); `harness keys init --force` "
                             "makes a new one") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise KeyMissing(f"{key_path} is not an Ed25519 key")
        self.key, self.key_dir = key, key_dir
        self._check_pair()

    def _check_pair(self) -> None:
        """The certificate must carry this very key: a split pair would sign what nothing ever verifies."""
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        public = self.key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        try:
            in_cert = self.cert.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        except (ValueError, TypeError):
            in_cert = b""
        if public != in_cert:
            raise KeyMissing(f"{self.key_dir / KEY_FILE} and {self.key_dir / CERT_FILE} are not one pair (the "
                             "certificate holds another public key); `harness keys init --force` makes a new pair")

    def sign(self, payload: bytes) -> dict[str, Any]:
        self._check_pair()  # before every signing
        return {"signature": base64.b64encode(self.key.sign(payload)).decode(),
                "certificate_pem": self.cert_pem.decode(), "subject": self.cert.subject.rfc4514_string(),
                "fingerprint_sha256": cert_fingerprint(self.cert)}


def verify_ed25519(payload: bytes, block: dict[str, Any]) -> str:
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        cert = x509.load_pem_x509_certificate(block["certificate_pem"].encode())
        signature = base64.b64decode(block["signature"], validate=True)
    except (KeyError, ValueError, TypeError, AttributeError) as exc:
        raise SignatureInvalid(f"the signature file is malformed: {exc}") from None
    key = cert.public_key()
    if not isinstance(key, Ed25519PublicKey):
        raise SignatureInvalid("the signer's certificate does not hold an Ed25519 key")
    if cert_fingerprint(cert) != block.get("fingerprint_sha256"):
        raise SignatureInvalid("the certificate fingerprint in the signature file does not match its certificate")
    try:
        key.verify(signature, payload)
    except InvalidSignature:
        raise SignatureInvalid("the signature does not match certificate.json and manifest.json") from None
    return cert.subject.rfc4514_string()


BUILTIN = SignerSpec(BUILTIN_SIGNER, load=Ed25519Signer, verify=verify_ed25519, init=init_ed25519,
                     description="Ed25519 with a self-signed X.509 lab certificate (python cryptography)")


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
