"""Closing asyncua's SecurityPolicy None gap: sessions are checked against the secure channel they use.

An asyncua server always accepts an OpenSecureChannel with policy None (clients need it for
GetEndpoints) and then processes CreateSession/ActivateSession on it whatever endpoints it
declared, so a client that skips endpoint matching gets a session — and sends its password — in
clear (LIBRARIES.md). A device must refuse that. The per-connection ``UaProcessor`` is the only
place that sees both the channel's policy and the session services, so the controller runs a
subclass of it: before CreateSession and ActivateSession (also the reattach of an existing session
from a new channel) it asks the Authenticator, which refuses a None channel unless the profile
declares None (or the auth_accepts_none_policy defect restores the gap) and a channel whose client
certificate is not trusted. Lockout of kind ``delay`` holds the ActivateSession answer here,
without blocking the event loop.

asyncua 2.1 builds the processor by module-global name in binary_server_asyncio; ``install``
points that name at the subclass — in the simulator's own process, which runs one server.

The same processor sees every UA-TCP message first, so the defect ``crash_on_malformed_hello`` lives
here too: a Hello whose EndpointUrl length field runs past the end of the message (read as unsigned,
so a negative length other than -1 does) is "copied" and the process dies with the status a fault
handler would give (the Modbus wire's crash defect's), as a stack written in C would crash. It also counts
the service requests for ``opcua_hang_on_flood`` and, once that has hung the server, drops every message
unanswered (ua_wire.py, which holds the connection-level robustness defects).
"""

from __future__ import annotations

import asyncio
import os
import struct
import sys
from typing import Any

from asyncua import ua
from asyncua.common.utils import ServiceError
from asyncua.server import binary_server_asyncio
from asyncua.server.internal_session import SessionState
from asyncua.server.uaprocessor import UaProcessor
from asyncua.ua.ua_binary import struct_from_binary
from cryptography.exceptions import InvalidSignature

from harness.simulators.controller.access import device_user
from harness.simulators.controller.ua_wire import GuardedProtocol, wire_of
from harness.simulators.wire_faults import CRASH_EXIT

_CREATE = ua.NodeId(ua.ObjectIds.CreateSessionRequest_Encoding_DefaultBinary)
_ACTIVATE = ua.NodeId(ua.ObjectIds.ActivateSessionRequest_Encoding_DefaultBinary)
_READ = ua.NodeId(ua.ObjectIds.ReadRequest_Encoding_DefaultBinary)
HELLO_FIXED_BYTES = 20  # ProtocolVersion, ReceiveBufferSize, SendBufferSize, MaxMessageSize, MaxChunkCount


def url_overruns_hello(body: Any, body_size: int) -> bool:
    """Does a Hello's EndpointUrl length (read as UInt32, the defect's mistake) run past the message's end?"""
    message = body.copy(body_size)
    if len(message) < HELLO_FIXED_BYTES + 4:
        return False
    message.skip(HELLO_FIXED_BYTES)
    (length,) = struct.unpack("<i", message.read(4))
    return length != -1 and length & 0xFFFFFFFF > len(message)


class GuardedProcessor(UaProcessor):
    async def process(self, header: Any, body: Any) -> Any:
        defects = getattr(getattr(self.iserver, "device", None), "defects", ())
        if "crash_on_malformed_hello" in defects and header.MessageType == ua.MessageType.Hello \
                and url_overruns_hello(body, header.body_size):
            sys.stderr.write("opcua: Hello EndpointUrl length runs past the message — process dies\n")
            sys.stderr.flush()
            os._exit(CRASH_EXIT)
        wire = wire_of(self.iserver)
        if wire is not None and wire.hung:
            return True  # opcua_hang_on_flood: nothing is answered any more, the connection stays open
        return await super().process(header, body)

    async def _process_message(self, typeid: ua.NodeId, requesthdr: Any, seqhdr: Any, body: Any) -> Any:
        wire = wire_of(self.iserver)
        if wire is not None:
            wire.count_request()
        auth = getattr(getattr(self.iserver, "device", None), "auth", None)
        if auth is not None and "session_usable_unactivated" in auth.defects and typeid == _READ \
                and self.session is not None and self.session.state == SessionState.Created:
            return await self._as_if_activated(typeid, requesthdr, seqhdr, body)
        if auth is not None and typeid in (_CREATE, _ACTIVATE):
            policy = self._connection.security_policy
            step = "CreateSession" if typeid == _CREATE else "ActivateSession"
            presented = _client_certificate(body) if typeid == _CREATE else None
            refusal = auth.refuse_channel(step, policy.URI, policy.peer_certificate, self.name, presented)
            if refusal is not None:
                raise ServiceError(refusal)
            if typeid == _ACTIVATE:
                await self._hold_if_delayed(auth, body)
                if "auth_skips_client_signature" in auth.defects:
                    return await self._without_signature_check(typeid, requesthdr, seqhdr, body)
                try:
                    return await super()._process_message(typeid, requesthdr, seqhdr, body)
                except InvalidSignature:  # asyncua lets it through as Bad_InternalError; Part 4 5.6.3 names it
                    raise ServiceError(ua.StatusCodes.BadApplicationSignatureInvalid) from None
        return await super()._process_message(typeid, requesthdr, seqhdr, body)

    async def _as_if_activated(self, typeid: Any, requesthdr: Any, seqhdr: Any, body: Any) -> Any:
        """Defect session_usable_unactivated: a Read on a session that was created but never activated is
        served (the activation check looks at the wrong flag)."""
        session, device = self.session, self.iserver.device  # type: ignore[attr-defined]
        user, session.user = session.user, device_user("(not activated)", device.roles.least_privileged(),
                                                       "anonymous")
        session.state = SessionState.Activated
        try:
            return await super()._process_message(typeid, requesthdr, seqhdr, body)
        finally:
            session.user = user
            if session.state == SessionState.Activated:
                session.state = SessionState.Created

    async def _without_signature_check(self, typeid: Any, requesthdr: Any, seqhdr: Any, body: Any) -> Any:
        """Defect auth_skips_client_signature: ActivateSession's ClientSignature is never verified."""
        crypto = self._connection.security_policy.asymmetric_cryptography
        crypto.verify = lambda data, signature: None
        try:
            return await super()._process_message(typeid, requesthdr, seqhdr, body)
        finally:
            del crypto.verify  # the class's own again

    @staticmethod
    async def _hold_if_delayed(auth: Any, body: Any) -> None:
        try:
            params = struct_from_binary(ua.ActivateSessionParameters, body.copy())
        except Exception:  # a malformed request: asyncua itself will answer it
            return
        token = params.UserIdentityToken
        if isinstance(token, ua.UserNameIdentityToken) and token.UserName:
            delay = auth.delay_s(token.UserName)
            if delay > 0:
                await asyncio.sleep(delay)


def _client_certificate(body: Any) -> bytes | None:
    """CreateSession's ClientCertificate field (None when empty or the request does not parse)."""
    try:
        return struct_from_binary(ua.CreateSessionParameters, body.copy()).ClientCertificate or None
    except Exception:  # a malformed request: asyncua itself will answer it
        return None


def install() -> None:
    """Make every new client connection of this process use the guarded processor and protocol."""
    binary_server_asyncio.UaProcessor = GuardedProcessor  # type: ignore[misc]
    binary_server_asyncio.OPCUAProtocol = GuardedProtocol  # type: ignore[misc]
