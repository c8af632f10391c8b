"""The controller's OPC UA face: an asyncua server whose address space is built from the profile.

Endpoints are exactly the profile's policies × modes with its identity tokens; the application
certificate is the device's own (certificate.py). Every node the profile names is created with
that NodeId — objects from the dotted prefix of string ids (``Process.StartPump`` lives on
``Process``) — and reads of points come from the device at the moment of the read (value
callbacks), so nothing is ever stale. Writes and calls reach the device through
ControllerSession (access.py); the session guard (channel.py) is installed before the server is.

Method signatures (docs/opcua.md): ``Transfer(Data: ByteString, Offset: UInt32, Total: UInt32)``,
``Install()``, ``Activate()``, ``Confirm()``, ``Rollback()``, the audit log's ``Clear()`` and the
control methods (``StartPump()``…) take no arguments and return none; a refusal is the call's
status code (BadUserAccessDenied, BadInvalidState, BadSecurityChecksFailed, …).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from asyncua import Node, Server, ua
from asyncua.common.utils import ServiceError
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from harness.simulators.controller import channel
from harness.simulators.controller.access import CURRENT_USER, ControllerInternalServer
from harness.simulators.controller.audit_events import (
    AuditEmitter,
    AuditEventFactory,
    AuditHistory,
    create_audit_event_type,
)
from harness.simulators.controller.certificate import application_certificate
from harness.simulators.controller.device import Controller
from harness.simulators.controller.profile import ControllerProfile, NodeRef, Point, ProfileError
from harness.simulators.controller.ua_status import conform_status_codes
from harness.simulators.controller.update import Refused

_MODES = {"Sign": ua.MessageSecurityMode.Sign, "SignAndEncrypt": ua.MessageSecurityMode.SignAndEncrypt,
          "None": ua.MessageSecurityMode.None_}
_TOKENS = {"username": ua.UserNameIdentityToken, "certificate": ua.X509IdentityToken,
           "anonymous": ua.AnonymousIdentityToken}


def policy_types(profile: ControllerProfile) -> list[ua.SecurityPolicyType]:
    """The profile's policies × modes as asyncua's endpoint types (None only when declared)."""
    from asyncua.crypto.security_policies import SECURITY_POLICY_TYPE_MAP

    wanted = set()
    for policy in profile.policies:
        for mode in profile.modes:
            if (policy == "None") == (mode == "None"):
                wanted.add((f"http://opcfoundation.org/UA/SecurityPolicy#{policy}", _MODES[mode]))
    types = [t for t, (cls, mode, _) in SECURITY_POLICY_TYPE_MAP.items() if (cls.URI, mode) in wanted]
    known = {(cls.URI, mode) for cls, mode, _ in SECURITY_POLICY_TYPE_MAP.values()}
    missing = wanted - known
    if missing:
        raise ProfileError(f"asyncua implements no endpoint for {sorted(str(m) for m in missing)}")
    return types


def leftover_policy_types(profile: ControllerProfile) -> list[ua.SecurityPolicyType]:
    """Defect endpoint_extra_policy: the stack's deprecated Basic128Rsa15 (RSA-1.5, SHA-1) endpoints in the
    declared secure modes, left enabled from its default configuration although the profile does not declare it."""
    extra = {"Sign": ua.SecurityPolicyType.Basic128Rsa15_Sign,
             "SignAndEncrypt": ua.SecurityPolicyType.Basic128Rsa15_SignAndEncrypt}
    return [] if "Basic128Rsa15" in profile.policies else [extra[m] for m in profile.modes if m in extra]


class AddressSpace:
    """Creates the profile's nodes and binds them to the device."""

    def __init__(self, server: Server, device: Controller, ns: int) -> None:
        self.server, self.device, self.ns = server, device, ns
        self.profile = device.profile
        self.objects: dict[str, Node] = {}
        self.emitter: AuditEmitter | None = None

    def node_id(self, ref: NodeRef) -> ua.NodeId:
        if ref.namespace_uri is not None:
            if ref.namespace_uri != self.profile.namespace_uri:
                raise ProfileError(f"{ref.text}: namespace {ref.namespace_uri} is not the device's "
                                   f"({self.profile.namespace_uri})")
            index = self.ns
        else:
            index = ref.namespace_index or 0
        return ua.NodeId(ref.identifier, index)

    async def parent_of(self, node: ua.NodeId) -> Node:
        """The object a dotted string id hangs on (created on first use); Objects for anything else."""
        if not isinstance(node.Identifier, str) or "." not in node.Identifier:
            return self.server.nodes.objects
        path = node.Identifier.rsplit(".", 1)[0]
        if path not in self.objects:
            parent = await self.parent_of(ua.NodeId(path, node.NamespaceIndex))
            oid = ua.NodeId(path, node.NamespaceIndex)
            existing = self.server.get_node(oid)
            try:
                await existing.read_browse_name()
                self.objects[path] = existing
            except ua.UaError:
                self.objects[path] = await parent.add_object(oid, ua.QualifiedName(path.rsplit(".", 1)[-1],
                                                                                  node.NamespaceIndex))
        return self.objects[path]

    async def variable(self, ref: NodeRef, value: Any, vtype: ua.VariantType, read: Callable[[], Any],
                       writable: bool = False) -> ua.NodeId:
        nid = self.node_id(ref)
        parent = await self.parent_of(nid)
        name = nid.Identifier.rsplit(".", 1)[-1] if isinstance(nid.Identifier, str) else str(nid.Identifier)
        var = await parent.add_variable(nid, ua.QualifiedName(name, nid.NamespaceIndex), ua.Variant(value, vtype))
        if writable:
            await var.set_writable()

        def callback(_nodeid: ua.NodeId, _attr: ua.AttributeIds) -> ua.DataValue:
            now = self.device.clock_value()  # the device stamps its values with its own clock
            return ua.DataValue(ua.Variant(read(), vtype), SourceTimestamp=now, ServerTimestamp=now)

        self.server.set_attribute_value_callback(nid, callback)
        return nid

    async def method(self, object_ref: NodeRef, method_ref: NodeRef, handler: Callable[..., Any],
                     inputs: list[ua.Argument] | None = None) -> None:
        oid, mid = self.node_id(object_ref), self.node_id(method_ref)
        parent = await self.parent_of(mid)
        if parent.nodeid != oid:
            raise ProfileError(f"{method_ref.text}: the simulator puts a method on the object its dotted id names "
                               f"({parent.nodeid.to_string()}), but the profile says {object_ref.text}")
        name = mid.Identifier.rsplit(".", 1)[-1] if isinstance(mid.Identifier, str) else str(mid.Identifier)
        await parent.add_method(mid, ua.QualifiedName(name, mid.NamespaceIndex), handler, inputs or [], [])

    # ---- the profile's parts --------------------------------------------------------------------------
    async def build(self) -> None:
        for point in self.profile.points.values():
            await self._point(point)
        for m in self.profile.methods.values():
            if m.operation == "manage_users":  # SetPassword(User: String, Password: String)
                await self.method(m.object, m.method, self._guarded(m.name, m.operation, self._set_password, arity=2),
                                  [_argument("User", ua.ObjectIds.String, "an existing account"),
                                   _argument("Password", ua.ObjectIds.String, "its new password")])
            else:
                await self.method(m.object, m.method, self._guarded(m.name, m.operation, self._control(m.name)))
        if self.profile.update is not None:
            await self._update()
        if self.profile.audit is not None:
            await self._audit()

    async def _point(self, point: Point) -> None:
        initial = self.device.read_point(point)
        vtype = ua.VariantType.String if point.kind == "identity" else \
            ua.VariantType.DateTime if point.kind == "clock" else \
            ua.VariantType.Boolean if isinstance(initial, bool) else ua.VariantType.Double
        nid = await self.variable(point.node, initial if vtype != ua.VariantType.Double else float(initial), vtype,
                                  lambda p=point, t=vtype: _as(self.device.read_point(p), t),
                                  writable=point.operation is not None)
        self.device.nodes[nid] = point

    async def _update(self) -> None:
        spec, update = self.profile.update, self.device.update
        assert spec is not None and update is not None
        s = ua.VariantType.String
        await self.variable(spec.state, update.state, s, lambda: update.state)
        if spec.previous_version:
            await self.variable(spec.previous_version, update.previous_version, s, lambda: update.previous_version)
        if spec.available_version:
            await self.variable(spec.available_version, update.available_version, s, lambda: update.available_version)
        transfer_args = [_argument("Data", ua.ObjectIds.ByteString, "the next chunk of the image"),
                         _argument("Offset", ua.ObjectIds.UInt32, "byte offset of this chunk in the image"),
                         _argument("Total", ua.ObjectIds.UInt32, "size of the whole image in bytes")]
        actions: dict[str, Callable[[str, list[Any]], None]] = {
            "transfer": lambda who, a: update.transfer(who, _bytes(a, 0), _uint(a, 1), _uint(a, 2)),
            "install": lambda who, a: update.install(who),
            "activate": lambda who, a: update.activate(who),
            "confirm": lambda who, a: update.confirm(who),
            "rollback": lambda who, a: update.rollback(who),
        }
        for name, ref in spec.methods.items():
            await self.method(spec.object, ref, self._guarded(f"SoftwareUpdate.{name}", "firmware", actions[name],
                                                              arity=3 if name == "transfer" else 0),
                              transfer_args if name == "transfer" else None)

    async def _audit(self) -> None:
        spec = self.profile.audit
        assert spec is not None
        type_id, source = self.node_id(spec.event_type), self.node_id(spec.source)
        await create_audit_event_type(self.server, spec, type_id)
        factory = AuditEventFactory(spec, type_id, source, self.server.get_application_uri())
        self.server.iserver.history_manager.set_storage(AuditHistory(self.device.audit, factory))
        await self.server.get_node(source).set_event_notifier([ua.EventNotifier.SubscribeToEvents,
                                                               ua.EventNotifier.HistoryRead])
        self.emitter = AuditEmitter(self.server, factory)
        self.emitter.attach(self.device.audit)
        if spec.clear is not None:
            await self.method(spec.clear.object, spec.clear.method,
                              self._guarded("AuditLog.Clear", spec.clear.operation,
                                            lambda who, _a: self.device.clear_log(who)))

    def _set_password(self, who: str, args: list[Any]) -> None:
        if not all(isinstance(a, str) and a for a in args):
            raise Refused(ua.StatusCodes.BadInvalidArgument, "User and Password are non-empty Strings")
        if not self.device.auth.users.set_password(args[0], args[1]):
            raise Refused(ua.StatusCodes.BadInvalidArgument, f"no account {args[0]!r}")
        self.device.log("settings_change", who, True, f"password of {args[0]} changed", subject=f"user:{args[0]}")

    def _control(self, name: str) -> Callable[[str, list[Any]], None]:
        return lambda who, _args: self.device.control_action(name, who)

    def _guarded(self, name: str, operation: str, action: Callable[[str, list[Any]], None],
                 arity: int = 0) -> Callable[..., Any]:
        """A method handler: the caller's role, the arguments, then the device."""
        async def handler(_parent: ua.NodeId, *args: Any) -> Any:
            values = [a.Value if isinstance(a, ua.Variant) else a for a in args]

            def run(who: str) -> None:  # after the role check: a caller without it learns nothing more
                if len(values) != arity:
                    raise Refused(ua.StatusCodes.BadArgumentsMissing if len(values) < arity
                                  else ua.StatusCodes.BadTooManyArguments, f"{name} takes {arity} argument(s)")
                action(who, values)

            code = self.device.call(name, operation, CURRENT_USER.get(), run)
            return ua.StatusCode(code) if code else []
        return handler


def _argument(name: str, datatype: int, description: str) -> ua.Argument:
    arg = ua.Argument()
    arg.Name, arg.DataType, arg.ValueRank = name, ua.NodeId(datatype), -1
    arg.Description = ua.LocalizedText(description)
    return arg


def _bytes(args: list[Any], i: int) -> bytes:
    if not isinstance(args[i], bytes | bytearray):
        raise Refused(ua.StatusCodes.BadInvalidArgument, f"argument {i + 1} must be a ByteString")
    return bytes(args[i])


def _uint(args: list[Any], i: int) -> int:
    if isinstance(args[i], bool) or not isinstance(args[i], int) or not 0 <= args[i] < 2 ** 32:
        raise Refused(ua.StatusCodes.BadInvalidArgument, f"argument {i + 1} must be a UInt32")
    return int(args[i])


def _as(value: Any, vtype: ua.VariantType) -> Any:
    return float(value) if vtype == ua.VariantType.Double else value


async def build_server(device: Controller, host: str, port: int) -> tuple[Server, AuditEmitter | None]:
    """A configured, not yet started server for the device, and the emitter of its live audit events."""
    profile = device.profile
    channel.install()
    iserver = ControllerInternalServer(user_manager=device.auth)  # type: ignore[arg-type]
    iserver.device = device
    server = Server(iserver=iserver)
    await server.init()
    conform_status_codes(iserver)  # Part 4's codes for unknown nodes (ua_status.py)
    server.set_endpoint(f"opc.tcp://{host}:{port}{profile.endpoint_path}")
    server.set_server_name(f"{profile.vendor} {profile.model} ({device.serial})")
    app_uri = f"urn:{profile.vendor}:{profile.model}:{device.serial}".lower().replace(" ", "-")
    await server.set_application_uri(app_uri)
    server.manufacturer_name, server.product_uri = profile.vendor, f"urn:{profile.vendor}:{profile.model}".lower()
    cert_path, key_path = application_certificate(device.state_dir, app_uri, f"{profile.model} {device.serial}")
    await server.load_certificate(str(cert_path))
    await server.load_private_key(str(key_path))
    server.set_security_policy(policy_types(profile) + (leftover_policy_types(profile)
                                                        if "endpoint_extra_policy" in device.defects else []))
    tokens = [t for name, t in _TOKENS.items() if name in profile.identities]
    if "auth_allows_anonymous" in device.defects and ua.AnonymousIdentityToken not in tokens:
        tokens.append(ua.AnonymousIdentityToken)
    server.set_identity_tokens(tokens)
    trusted = set(device.auth.trust.roles)

    async def validate(cert: x509.Certificate, _app: ua.ApplicationDescription) -> None:
        if cert.public_bytes(serialization.Encoding.DER) not in trusted and not device.auth.trusts_any_certificate:
            raise ServiceError(ua.StatusCodes.BadCertificateUntrusted)

    server.set_certificate_validator(validate)
    device.namespace_index = await server.register_namespace(profile.namespace_uri)
    space = AddressSpace(server, device, device.namespace_index)
    await space.build()
    return server, space.emitter
