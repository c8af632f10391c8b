"""Who the harness logs in to an OPC UA device as.

A plain Device API call uses the least privileged declared role that may perform the operation and for
which the rig has credentials (a read as viewer, a setpoint write as operator), else anonymous if the
device accepts it; a negative check names any identity it wants to try — anonymous, a user and password,
the harness's trusted or untrusted certificate.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from harness.config.opcua_map import OpcuaMap, Operation
from harness.config.rig import Dut
from harness.devices.api import NotDeclared
from harness.devices.opcua_pki import Pki
from harness.devices.opcua_session import Anonymous, Identity, UserPassword, X509Identity
from harness.reporting.texts import Msg

IdentityArg = Identity | str | tuple[str, str] | None


class Accounts:
    """The rig's accounts for a device's declared roles, and the identities a check may name."""

    def __init__(self, name: str, model: str, opcua_map: OpcuaMap, dut: Dut, pki: Callable[[], Pki]) -> None:
        self.name = name
        self.model = model
        self.map = opcua_map
        self.dut = dut
        self.pki = pki  # made on first need (a certificate identity)

    def identity(self, identity: IdentityArg) -> Identity:
        if isinstance(identity, Anonymous | UserPassword | X509Identity):
            return identity
        if isinstance(identity, tuple):
            return UserPassword(*identity)
        if identity == "anonymous":
            return Anonymous()
        if identity in ("certificate", "untrusted_certificate"):
            cert = self.pki().trusted if identity == "certificate" else self.pki().untrusted
            return X509Identity(cert.der, cert.key, "trusted" if identity == "certificate" else "untrusted")
        raise ValueError(f"identity {identity!r}: anonymous, certificate, untrusted_certificate, (user, password), "
                         "or an Anonymous/UserPassword/X509Identity")

    def for_role(self, role: str | None, operation: Operation) -> Identity:
        """The rig's account for ``role``; without one, for the least privileged role that may do ``operation``."""
        if role is None:
            for candidate in self.map.roles_allowing(operation):
                if candidate in self.dut.credentials:
                    return self.credential(candidate)
            if "anonymous" in self.map.security.identities:
                return Anonymous()
            allowed = ", ".join(self.map.roles_allowing(operation)) or "none declared"
            raise NotDeclared(Msg("{device}: no account to {operation} with: the rig gives no credentials for a role "
                                  "that may (profile: {allowed}) and the device accepts no anonymous session",
                                  device=self.name, operation=operation.value, allowed=allowed))
        if role not in self.map.roles:
            raise NotDeclared(Msg("{device}: profile {model} declares no role {role!r} (declared: {value})",
                                  device=self.name, model=self.model, role=role,
                                  value=', '.join(self.map.roles) or Msg("none")))
        return self.credential(role)

    def credential(self, role: str) -> Identity:
        cred = self.dut.credentials.get(role)
        if cred is None:
            raise NotDeclared(Msg("{device}: the rig gives no credentials for role {role!r} "
                                  "(duts.{device}.credentials)", device=self.name, role=role))
        if cred.user is not None:
            return UserPassword(cred.user, cred.password or "")
        if cred.certificate is None or cred.key is None:
            raise NotDeclared(Msg("{device}: the rig's credentials for role {role!r} give neither a user (with its "
                                  "password) nor a certificate and key", device=self.name, role=role))
        return X509Identity(Path(cred.certificate), Path(cred.key), role)
