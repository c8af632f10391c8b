"""A small stock asyncua server for the driver's own tests: a real OPC UA server on loopback, no mocks.

Its address space matches tests/data/opcua-stock.yaml, and deliberately differs from the simulated
controller's (other node ids, namespace, event property names, audit source), so the driver is
proven generic. It is *stock* asyncua where that matters: it does nothing against a client that
skips endpoint matching — the gap the simulated controller closes.

    python tests/opcua_server.py --port P --pki DIR --trust CLIENT.der --users u:p:role,...

Roles: administrator → asyncua Admin; operator and viewer → User (viewer: no Write, no Call, by a
permission ruleset); the parameter RampRate is writable by Admin only (UserAccessLevel).
Audit events (type StockAuditEventType, category property ``Kind``) are emitted from Plant on
writes and method calls and historized in memory.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import logging
import socket
import sys
from datetime import UTC, datetime
from pathlib import Path

from asyncua import Server, ua
from asyncua.common.callback import CallbackType
from asyncua.common.methods import uamethod
from asyncua.crypto import cert_gen
from asyncua.crypto.permission_rules import SimpleRoleRuleset, User, UserRole
from asyncua.server.history import HistoryDict
from asyncua.server.user_managers import UserManager
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import DNSName, UniformResourceIdentifier
from cryptography.x509.oid import ExtendedKeyUsageOID

NS = "urn:test:stock-ctrl"
POLICIES = [ua.SecurityPolicyType.Basic256Sha256_Sign, ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
            ua.SecurityPolicyType.Aes128Sha256RsaOaep_SignAndEncrypt,
            ua.SecurityPolicyType.Aes256Sha256RsaPss_SignAndEncrypt]
DENIED_TO_VIEWERS = {ua.NodeId(ua.ObjectIds.WriteRequest_Encoding_DefaultBinary),
                     ua.NodeId(ua.ObjectIds.CallRequest_Encoding_DefaultBinary)}


class Accounts(UserManager):
    def __init__(self, users: dict[str, tuple[str, str]], trusted: bytes) -> None:
        self.users = users
        self.trusted = trusted

    def get_user(self, iserver, username=None, password=None, certificate=None):
        if certificate is not None and username is None:
            return User(role=UserRole.Admin, name="certificate-admin") if certificate == self.trusted else None
        account = self.users.get(username or "")
        if account is None or account[0] != password:
            return None
        role = account[1]
        return User(role=UserRole.Admin if role == "administrator" else UserRole.User, name=f"{username}:{role}")


class ViewersReadOnly(SimpleRoleRuleset):
    def check_validity(self, user, action_type_id, body):
        if user.name and user.name.endswith(":viewer") and action_type_id in DENIED_TO_VIEWERS:
            return False
        return super().check_validity(user, action_type_id, body)


class HistoryBySource(HistoryDict):
    """asyncua's in-memory history files every event under the Server object (its internal subscription
    loses the emitting node); file it under its SourceNode, so a source other than Server can be read."""

    async def save_event(self, event):
        event.emitting_node = getattr(event, "SourceNode", None) or event.emitting_node
        await super().save_event(event)


def server_certificate(pki: Path) -> tuple[bytes, bytes]:
    key = cert_gen.generate_private_key()
    cert = cert_gen.generate_self_signed_app_certificate(
        key, "stock test server", {}, [UniformResourceIdentifier("urn:test:stock-server"),
                                      DNSName(socket.gethostname()), DNSName("localhost")],
        [ExtendedKeyUsageOID.SERVER_AUTH], days=30)
    pki.mkdir(parents=True, exist_ok=True)
    return cert.public_bytes(Encoding.DER), cert_gen.dump_private_key_as_pem(key)


async def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--pki", type=Path, required=True)
    ap.add_argument("--trust", type=Path, required=True)
    ap.add_argument("--users", default="")
    ap.add_argument("--credentials-file", type=Path, help="the harness's {credentials_file}: accounts as --users")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.CRITICAL)
    if args.credentials_file is not None:
        from harness.simulators.credentials_file import read_credentials, users_spec

        args.users = ",".join(s for s in (args.users, users_spec(read_credentials(args.credentials_file))) if s)
    users = {u: (p, r) for u, p, r in (item.split(":") for item in args.users.split(",") if item)}
    trusted = args.trust.read_bytes()

    server = Server(user_manager=Accounts(users, trusted))
    await server.init()
    server.set_endpoint(f"opc.tcp://127.0.0.1:{args.port}/test/ctrl")
    server.set_server_name("stock test server")
    await server.set_application_uri("urn:test:stock-server")
    cert, key = server_certificate(args.pki)
    await server.load_certificate(cert)
    await server.load_private_key(key, format="pem")
    server.set_security_policy(POLICIES, permission_ruleset=ViewersReadOnly())
    server.set_identity_tokens([ua.UserNameIdentityToken, ua.X509IdentityToken])

    async def trust_only_the_harness(certificate, _app):
        if certificate.public_bytes(Encoding.DER) != trusted:
            from asyncua.common.utils import ServiceError

            raise ServiceError(ua.StatusCodes.BadCertificateUntrusted)

    server.set_certificate_validator(trust_only_the_harness)
    idx = await server.register_namespace(NS)
    objects = server.nodes.objects

    plant = await objects.add_object(ua.NodeId("Plant", idx), ua.QualifiedName("Plant", idx))
    await plant.set_event_notifier([ua.EventNotifier.SubscribeToEvents, ua.EventNotifier.HistoryRead])
    async def var(name, value, vtype, writable=False):
        node = await plant.add_variable(ua.NodeId(f"Plant.{name}", idx), ua.QualifiedName(name, idx),
                                        ua.Variant(value, vtype))
        if writable:
            await node.set_writable()
        return node

    await var("Serial", "TS-0001", ua.VariantType.String)
    firmware = await var("Firmware", "1.4.2", ua.VariantType.String)
    await var("Clock", datetime.now(UTC), ua.VariantType.DateTime, writable=True)
    await var("FlowTemp", 71.5, ua.VariantType.Double)
    await var("HeatPower", 12.5, ua.VariantType.Double)
    await var("Setpoint", 65.0, ua.VariantType.Float, writable=True)
    ramp = await var("RampRate", 2.0, ua.VariantType.Double, writable=True)
    await ramp.write_attribute(ua.AttributeIds.UserAccessLevel,
                               ua.DataValue(ua.Variant(ua.AccessLevel.CurrentRead.mask, ua.VariantType.Byte)))

    etype = await server.get_node(ua.ObjectIds.AuditEventType).add_object_type(
        ua.NodeId("StockAuditEventType", idx), ua.QualifiedName("StockAuditEventType", idx))
    for prop in ("Kind", "OldValue", "NewValue"):
        await etype.add_property(idx, prop, "", varianttype=ua.VariantType.String)
    await plant.add_reference(etype.nodeid, ua.ObjectIds.GeneratesEvent)
    server.iserver.history_manager.set_storage(HistoryBySource())
    await server.historize_node_event(plant, period=None)
    audit = await server.get_event_generator(etype, plant)

    async def log(kind: str, user: str, subject: str, old: str = "", new: str = "", ok: bool = True) -> None:
        audit.event.Kind = kind
        audit.event.ClientUserId = user
        audit.event.Status = ok
        audit.event.SourceName = subject
        audit.event.OldValue = old
        audit.event.NewValue = new
        audit.event.Severity = 500
        await audit.trigger(message=f"{kind} {subject}")

    values_before: dict[str, str] = {}

    async def before_write(event, _dispatcher):
        if not event.is_external:
            return
        for wv in event.request_params.NodesToWrite:
            values_before[wv.NodeId.to_string()] = str(await server.get_node(wv.NodeId).read_value())

    async def after_write(event, _dispatcher):
        if not event.is_external:
            return
        who = event.user.name if event.user and event.user.name else "?"
        for wv, status in zip(event.request_params.NodesToWrite, event.response_params, strict=False):
            subject = wv.NodeId.to_string()
            await log("set", who.split(":")[0], subject, values_before.get(subject, ""), str(wv.Value.Value.Value),
                      status.is_good())

    server.subscribe_server_callback(CallbackType.PreWrite, before_write)
    server.subscribe_server_callback(CallbackType.PostWrite, after_write)

    @uamethod
    async def start_pump(parent):
        await log("ctl", "?", "Plant.StartPump")

    @uamethod
    def scale(parent, x, y):
        return float(x) * float(y)

    await plant.add_method(ua.NodeId("Plant.StartPump", idx), ua.QualifiedName("StartPump", idx), start_pump, [], [])
    await plant.add_method(ua.NodeId("Plant.Scale", idx), ua.QualifiedName("Scale", idx), scale,
                           [ua.VariantType.UInt32, ua.VariantType.Double], [ua.VariantType.Double])

    # --- software update: chunks reassembled, digest shown as the available version ---
    updater = await objects.add_object(ua.NodeId("Updater", idx), ua.QualifiedName("Updater", idx))
    state = await updater.add_variable(ua.NodeId("Updater.State", idx), ua.QualifiedName("State", idx), "Idle")
    previous = await updater.add_variable(ua.NodeId("Updater.Previous", idx), ua.QualifiedName("Previous", idx), "")
    available = await updater.add_variable(ua.NodeId("Updater.Available", idx), ua.QualifiedName("Available", idx),
                                           "")
    image = bytearray()

    @uamethod
    async def transfer(parent, data, offset, total):
        if offset == 0:
            image.clear()
        if offset != len(image):
            return ua.StatusCode(ua.StatusCodes.BadInvalidArgument)
        image.extend(data)
        await state.write_value("Transferred" if len(image) == total else "Transferring")
        return None

    @uamethod
    async def install(parent):
        if (await state.read_value()) != "Transferred":
            return ua.StatusCode(ua.StatusCodes.BadInvalidState)
        await available.write_value("sha256:" + hashlib.sha256(bytes(image)).hexdigest()[:12])
        await state.write_value("Installed")
        return None

    @uamethod
    async def activate(parent):
        await previous.write_value(await firmware.read_value())
        await firmware.write_value(await available.read_value())
        await state.write_value("Confirming")

    @uamethod
    async def confirm(parent):
        await state.write_value("Idle")

    @uamethod
    async def rollback(parent):
        await firmware.write_value(await previous.read_value())
        await state.write_value("RolledBack")

    for name, func, inputs in (("Transfer", transfer, [ua.VariantType.ByteString, ua.VariantType.UInt32,
                                                        ua.VariantType.UInt32]),
                               ("Install", install, []), ("Activate", activate, []), ("Confirm", confirm, []),
                               ("Rollback", rollback, [])):
        await updater.add_method(ua.NodeId(f"Updater.{name}", idx), ua.QualifiedName(name, idx), func, inputs, [])

    async with server:
        print("ready", flush=True)
        while True:
            await asyncio.sleep(3600)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
