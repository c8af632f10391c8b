"""The controller's OPC UA application instance certificate: made at first start, kept in the state dir.

A device gets its certificate once (at commissioning) and keeps it, so that clients that pinned it
keep trusting it across power cuts. Key and certificate are written atomically (temp + fsync +
rename): a cut during the first start leaves either none or both.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

from asyncua.crypto.cert_gen import dump_private_key_as_pem, generate_private_key, generate_self_signed_app_certificate
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from harness.durable import write_atomically

CERT_DAYS = 3650


def application_certificate(state_dir: Path, app_uri: str, name: str) -> tuple[Path, Path]:
    """(certificate DER, private key PEM) of the server, generated on first use."""
    pki = state_dir / "pki"
    cert_path, key_path = pki / "server-cert.der", pki / "server-key.pem"
    if cert_path.exists() and key_path.exists():
        return cert_path, key_path
    pki.mkdir(parents=True, exist_ok=True)
    key = generate_private_key()
    cert = generate_self_signed_app_certificate(
        key, name, {"organizationName": "tek-harness simulated devices"},
        [x509.UniformResourceIdentifier(app_uri), x509.DNSName("localhost"),
         x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
        extended=[ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH], days=CERT_DAYS)
    write_atomically(key_path, dump_private_key_as_pem(key), mode=0o600)
    write_atomically(cert_path, cert.public_bytes(Encoding.DER))  # last: its presence means both are whole
    return cert_path, key_path
