"""The harness's OPC UA client certificates, made at run time into OUTDIR/pki (never committed).

An OPC UA client proves itself with an application instance certificate; a secured device only
talks to clients whose certificate its lab trusts. The harness makes its own per run — a trusted
one (the launch placeholder ``{client_cert}`` hands it to a simulator; a lab installs it on a real
device) and an untrusted one that nobody trusts, for the negative checks — unless the rig names a
certificate the device already trusts (``client_certificate`` / ``client_key``).
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from harness.durable import write_atomically

APPLICATION_URI = "urn:tek-harness:client"
UNTRUSTED_URI = "urn:tek-harness:untrusted-client"
_LOCK = threading.Lock()  # two devices of one run share OUTDIR/pki: one maker at a time


class PkiError(RuntimeError):
    """The client certificate could not be made or read (with the file it is about)."""


@dataclass(frozen=True)
class ClientCertificate:
    """One application certificate: DER (what OPC UA sends), PEM copy, private key (PEM), its URI."""

    der: Path
    pem: Path
    key: Path
    application_uri: str


@dataclass(frozen=True)
class Pki:
    """The run's client certificates: ``trusted`` (``{client_cert}`` is its DER) and ``untrusted``."""

    directory: Path
    trusted: ClientCertificate
    untrusted: ClientCertificate

    @property
    def client_cert(self) -> Path:
        return self.trusted.der


def ensure_pki(directory: Path, certificate: Path | str | None = None, key: Path | str | None = None) -> Pki:
    """Make (or reuse) the run's certificates in ``directory``; a rig's own certificate replaces the trusted one."""
    directory = Path(directory)
    if (certificate is None) != (key is None):
        raise PkiError("the rig gives client_certificate without client_key (or the other way round): give both")
    with _LOCK:
        directory.mkdir(parents=True, exist_ok=True)
        if certificate is not None and key is not None:
            trusted = _adopt(Path(certificate), Path(key), directory)
        else:
            trusted = _made(directory, "harness-client", APPLICATION_URI)
        untrusted = _made(directory, "untrusted-client", UNTRUSTED_URI)
    return Pki(directory, trusted, untrusted)


def _made(directory: Path, stem: str, uri: str) -> ClientCertificate:
    """A self-signed client certificate, reused while it is readable and valid for another day."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    der, pem, key = directory / f"{stem}.der", directory / f"{stem}.pem", directory / f"{stem}-key.pem"
    if der.exists() and pem.exists() and key.exists():
        try:
            cert = x509.load_der_x509_certificate(der.read_bytes())
            if cert.not_valid_after_utc > datetime.now(UTC) + timedelta(days=1):
                return ClientCertificate(der, pem, key, uri)
        except ValueError:
            pass  # unreadable: made anew below
    from asyncua.crypto import cert_gen
    from cryptography.x509.oid import ExtendedKeyUsageOID

    private_key = cert_gen.generate_private_key()
    host = socket.gethostname()
    cert = cert_gen.generate_self_signed_app_certificate(
        private_key, f"tek-harness {stem}", {"organizationName": "tek-harness"},
        [x509.UniformResourceIdentifier(uri), x509.DNSName(host), x509.DNSName("localhost")],
        [ExtendedKeyUsageOID.CLIENT_AUTH], days=365)
    _write(key, cert_gen.dump_private_key_as_pem(private_key), private=True)
    _write(pem, cert.public_bytes(Encoding.PEM))
    _write(der, cert.public_bytes(Encoding.DER))
    return ClientCertificate(der, pem, key, uri)


def _adopt(certificate: Path, key: Path, directory: Path) -> ClientCertificate:
    """The rig's certificate as it is; a DER copy when it is PEM (OPC UA sends DER), its URI from the SAN."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    for path in (certificate, key):
        if not path.is_file():
            raise PkiError(f"client certificate file {path} not found (rig: client_certificate / client_key)")
    data = certificate.read_bytes()
    try:
        cert = x509.load_pem_x509_certificate(data) if data.lstrip().startswith(b"-----") \
            else x509.load_der_x509_certificate(data)
    except ValueError as exc:
        raise PkiError(f"{certificate} is not an X.509 certificate (DER or PEM): {exc}") from None
    der, pem = directory / "rig-client.der", directory / "rig-client.pem"
    _write(der, cert.public_bytes(Encoding.DER))
    _write(pem, cert.public_bytes(Encoding.PEM))
    return ClientCertificate(der, pem, key, application_uri_of(cert) or APPLICATION_URI)


def application_uri_of(cert: object) -> str | None:
    """The URI in a certificate's subjectAltName: what the client must call itself in CreateSession."""
    from cryptography import x509

    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)  # type: ignore[attr-defined]
    except x509.ExtensionNotFound:
        return None
    uris = san.value.get_values_for_type(x509.UniformResourceIdentifier)
    return uris[0] if uris else None


def _write(path: Path, data: bytes, private: bool = False) -> None:
    write_atomically(path, data, mode=0o600 if private else 0o644)
