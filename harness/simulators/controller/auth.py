"""Authentication: trusted client certificates, user accounts with lockout, the identities the profile
declares — and the refusal of sessions over SecurityPolicy None.

``Authenticator`` is asyncua's user manager (``get_user``, called at ActivateSession) and the
channel check the guarded processor (channel.py) asks at CreateSession and ActivateSession. Every
success, failure, lock and refusal goes to the audit log before the client gets its answer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from asyncua import ua
from asyncua.crypto.security_policies import SecurityPolicyNone
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from harness.simulators.controller.access import TOKEN_KIND, DeviceUser, RoleTable, device_user
from harness.simulators.controller.users import FACTORY_ADMIN, LockoutTracker, UserStore

Log = Callable[..., None]  # log(kind, user, outcome, message)


def load_certificate_der(path: Path) -> bytes:
    data = path.read_bytes()
    cert = x509.load_pem_x509_certificate(data) if data.lstrip().startswith(b"-----") \
        else x509.load_der_x509_certificate(data)
    return cert.public_bytes(serialization.Encoding.DER)


def common_name(der: bytes | None) -> str:
    if not der:
        return "?"
    try:
        names = x509.load_der_x509_certificate(der).subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    except ValueError:
        return "?"
    return str(names[0].value) if names else "?"


@dataclass
class TrustList:
    """Client certificates the device trusts (DER -> the role a certificate identity gets)."""

    roles: dict[bytes, str] = field(default_factory=dict)

    def add(self, der: bytes, role: str) -> None:
        self.roles[der] = role

    def role_of(self, der: bytes | None) -> str | None:
        return self.roles.get(der) if der else None


class Authenticator:
    def __init__(self, users: UserStore, lockout: LockoutTracker, trust: TrustList, roles: RoleTable,
                 identities: set[str], none_policy_allowed: bool, defects: set[str], now: Callable[[], float],
                 log: Log) -> None:
        self.users, self.lockout, self.trust, self.roles = users, lockout, trust, roles
        self.identities, self.none_policy_allowed, self.defects = identities, none_policy_allowed, defects
        self.now, self.log = now, log

    @property
    def trusts_any_certificate(self) -> bool:
        """Defect auth_trusts_any_certificate: no trust list, every client certificate is taken."""
        return "auth_trusts_any_certificate" in self.defects

    def certificate_role(self, der: bytes | None) -> str | None:
        """The role a client certificate gets as user identity (None: not trusted)."""
        role = self.trust.role_of(der)
        if role is None and der and self.trusts_any_certificate:
            return self.roles.first()  # what --trust gives a certificate named without a role
        return role

    # ---- the secure channel (asked by the guarded processor) ---------------------------------------
    def refuse_channel(self, step: str, policy_uri: str, peer_certificate: bytes | None, peer: Any,
                       session_certificate: bytes | None = None) -> int | None:
        """A status code to refuse CreateSession/ActivateSession with, or None to go on.

        The golden device judges the certificate the secure channel was opened with, whatever CreateSession
        says; ``session_certificate`` (CreateSession's ClientCertificate field) matters only to the defect."""
        if policy_uri == SecurityPolicyNone.URI:
            if self.none_policy_allowed:
                return None
            self.log("security_event", "", False, f"{step} over SecurityPolicy None from {_peer(peer)} refused: "
                     "the device offers no such endpoint")
            return ua.StatusCodes.BadSecurityPolicyRejected
        if "auth_session_certificate_optional" in self.defects:
            # the stock asyncua way: only a CreateSession that names a certificate has it checked
            if step != "CreateSession" or not session_certificate:
                return None
            peer_certificate = session_certificate
        if self.trust.role_of(peer_certificate) is None and not self.trusts_any_certificate:
            self.log("security_event", "", False, f"{step} from {_peer(peer)} refused: client certificate "
                     f"{common_name(peer_certificate)!r} is not trusted")
            return ua.StatusCodes.BadCertificateUntrusted
        return None

    def delay_s(self, username: str) -> float:
        return self.lockout.delay_s(username, self.now())

    # ---- asyncua's user manager ------------------------------------------------------------------------
    def get_user(self, iserver: Any, username: str | None = None, password: str | None = None,
                 certificate: Any = None) -> DeviceUser | None:
        kind = TOKEN_KIND.get()
        if kind == "username":
            return self._password_login(username or "", password or "")
        if kind == "certificate":
            der = certificate if isinstance(certificate, bytes) else None
            role = self.certificate_role(der) if "certificate" in self.identities else None
            name = f"cert:{common_name(der)}"
            if role is None:
                self.log("login_failure", name, False, "certificate identity refused: certificate not trusted"
                         if "certificate" in self.identities else "certificate identities are not accepted")
                return None
            self.log("login_success", name, True, f"login with a trusted certificate (role {role})")
            return device_user(name, role, "certificate")
        if "anonymous" in self.identities or "auth_allows_anonymous" in self.defects:
            role = self.roles.least_privileged()
            self.log("login_success", "anonymous", True, f"anonymous login (role {role})")
            return device_user("anonymous", role, "anonymous")
        self.log("login_failure", "anonymous", False, "anonymous login refused")
        return None

    def token_refused(self, name: str, kind: str, status: str) -> None:
        """An identity token asyncua refused before asking us (a type the device does not accept)."""
        self.log("login_failure", name, False, f"{kind} identity refused ({status})")

    def _password_login(self, name: str, password: str) -> DeviceUser | None:
        now = self.now()
        if "username" not in self.identities:
            self.log("login_failure", name, False, "user name/password identities are not accepted")
            return None
        if self.lockout.locked(name, now):
            self.log("login_failure", name, False, "login refused: account locked")
            return None
        role = self.users.check(name, password)
        if role is None and "auth_ignores_password" in self.defects and self.users.role_of(name) in \
                self.roles.most_privileged():
            role = self.users.role_of(name)  # the back door: that account's password is never compared
        if role is None and "auth_default_password" in self.defects and (name, password) == FACTORY_ADMIN:
            role = "administrator" if "administrator" in self.roles.roles else self.roles.first()
        if role is None:
            started = self.lockout.failed(name, now)
            self.log("login_failure", name, False, "wrong user name or password")
            if started and self.lockout.policy is not None:
                p = self.lockout.policy
                what = "account locked" if p.kind == "lock" else "logins delayed"
                self.log("security_event", name, True, f"{what} for {p.duration_s:g} s after {p.after_failures} "
                         "failed logins in a row")
            return None
        self.lockout.succeeded(name)
        self.log("login_success", name, True, f"login (role {role})")
        return device_user(name, role)


def _peer(peer: Any) -> str:
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return str(peer)
