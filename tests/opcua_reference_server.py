"""A plain asyncua 2.1 server — asyncua's own ``Server`` and its documented API only, no project code — as a
reference peer of the OPC UA checks (issue 12): what a lab meets when a vendor ships the stack as it comes.

    python tests/opcua_reference_server.py --config defaults --port P
    python tests/opcua_reference_server.py --config hardened --port P --trust CLIENT.der --trust-dir DIR \
        --credentials-file FILE   (JSON role -> {user, password})

- ``defaults``: ``Server()`` as the library makes it: no certificate, so only a None/None endpoint; the default
  (permissive) user manager, so any user name and password — and anonymous — get a session.
- ``hardened``: Basic256Sha256 SignAndEncrypt only, client certificates checked against a trust store
  (``TrustStore`` + ``CertificateValidator``), user names only, a user manager with the accounts given, and a
  viewer role through ``permission_ruleset`` (no Write, no Call).

Its profiles: tests/data/opcua-reference-defaults.yaml and opcua-reference-hardened.yaml. The address space is
the same in both: Plant.SerialNumber and the process values Temperature and PumpRunning (read-only access
levels), the writable Plant.Setpoint, and Plant.StartPump / Plant.StopPump.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import socket
import sys
from pathlib import Path

from asyncua import Server, ua
from asyncua.common.methods import uamethod
from asyncua.crypto import cert_gen
from asyncua.crypto.permission_rules import SimpleRoleRuleset, User, UserRole
from asyncua.crypto.truststore import TrustStore
from asyncua.crypto.validator import CertificateValidator, CertificateValidatorOptions
from asyncua.server.user_managers import UserManager
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import DNSName, UniformResourceIdentifier
from cryptography.x509.oid import ExtendedKeyUsageOID

NS = "urn:test:reference"
PATH = "/reference"
DENIED_TO_VIEWERS = {ua.NodeId(ua.ObjectIds.WriteRequest_Encoding_DefaultBinary),
                     ua.NodeId(ua.ObjectIds.CallRequest_Encoding_DefaultBinary)}


class Accounts(UserManager):
    """user -> (password, role); administrator is asyncua's Admin, every other role its User."""

    def __init__(self, users: dict[str, tuple[str, str]]) -> None:
        self.users = users

    def get_user(self, iserver, username=None, password=None, certificate=None):
        account = self.users.get(username or "")
        if account is None or account[0] != password:
            return None
        return User(role=UserRole.Admin if account[1] == "administrator" else UserRole.User,
                    name=f"{username}:{account[1]}")


class ViewersReadOnly(SimpleRoleRuleset):
    def check_validity(self, user, action_type_id, body):
        if user.name and user.name.endswith(":viewer") and action_type_id in DENIED_TO_VIEWERS:
            return False
        return super().check_validity(user, action_type_id, body)


async def harden(server: Server, args: argparse.Namespace) -> None:
    key = cert_gen.generate_private_key()
    cert = cert_gen.generate_self_signed_app_certificate(
        key, "reference server", {}, [UniformResourceIdentifier("urn:test:reference-server"),
                                      DNSName(socket.gethostname()), DNSName("localhost")],
        [ExtendedKeyUsageOID.SERVER_AUTH], days=30)
    await server.load_certificate(cert.public_bytes(Encoding.DER))
    await server.load_private_key(cert_gen.dump_private_key_as_pem(key), format="pem")
    server.set_security_policy([ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt],
                               permission_ruleset=ViewersReadOnly())
    server.set_identity_tokens([ua.UserNameIdentityToken])
    args.trust_dir.mkdir(parents=True, exist_ok=True)  # the lab installs the client's certificate in the store
    (args.trust_dir / args.trust.name).write_bytes(args.trust.read_bytes())
    store = TrustStore([args.trust_dir], [])
    await store.load()
    server.set_certificate_validator(CertificateValidator(
        CertificateValidatorOptions.TRUSTED_VALIDATION | CertificateValidatorOptions.PEER_CLIENT, store))


async def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", choices=("defaults", "hardened"), required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--trust", type=Path, help="the client certificate (DER) the lab installs")
    ap.add_argument("--trust-dir", type=Path, help="the trust store's directory")
    ap.add_argument("--credentials-file", type=Path,
                    help="the accounts as the harness hands them to a DUT ({credentials_file}: JSON role -> "
                         "{user, password}); never on the command line, where ps and the DUT log would show them")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.CRITICAL)
    accounts = json.loads(args.credentials_file.read_text(encoding="utf-8")) if args.credentials_file else {}
    users = {a["user"]: (a["password"], role) for role, a in accounts.items() if a.get("user") and a.get("password")}

    server = Server(user_manager=Accounts(users)) if args.config == "hardened" else Server()
    await server.init()
    server.set_endpoint(f"opc.tcp://127.0.0.1:{args.port}{PATH}")
    server.set_server_name(f"reference server ({args.config})")
    if args.config == "hardened":
        await harden(server, args)
    idx = await server.register_namespace(NS)
    plant = await server.nodes.objects.add_object(ua.NodeId("Plant", idx), ua.QualifiedName("Plant", idx))

    async def var(name: str, value: object, vtype: ua.VariantType, writable: bool = False):
        node = await plant.add_variable(ua.NodeId(f"Plant.{name}", idx), ua.QualifiedName(name, idx),
                                        ua.Variant(value, vtype))
        if writable:
            await node.set_writable()
        return node

    await var("SerialNumber", "REF-0001", ua.VariantType.String)
    await var("Temperature", 71.5, ua.VariantType.Double)
    pump = await var("PumpRunning", True, ua.VariantType.Boolean)
    await var("Setpoint", 65.0, ua.VariantType.Double, writable=True)

    def switch(on: bool):
        @uamethod
        async def run(parent):
            await pump.write_value(on)
        return run

    for name, on in (("StartPump", True), ("StopPump", False)):
        await plant.add_method(ua.NodeId(f"Plant.{name}", idx), ua.QualifiedName(name, idx), switch(on), [], [])

    async with server:
        print("ready", flush=True)
        while True:
            await asyncio.sleep(3600)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
