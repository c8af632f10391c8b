"""Opening OPC UA sessions step by step, so that every refusal is evidence, not just an exception.

Access-control checks (cl. 66/76/78/94) are about what a device *refuses*: a wrong password, an
untrusted certificate, a policy it does not offer, a client that skips endpoint matching and asks
for a session over SecurityPolicy None (LIBRARIES.md: a stock asyncua server grants it). So a
session is opened one step at a time — endpoint, channel, session, activation (and, for the
attacks, a first read: "use"; the steps are ``opcua_steps.py``) — and the outcome is a
``SessionAttempt`` that says which step refused and with which OPC UA status, whether or not it
was accepted, and which certificates it sent.

Everything here runs on the device's private loop (``opcua_loop.py``); ``opcua.py`` is the
synchronous face.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness.config.opcua_map import SecurityMode, SecurityPolicy
from harness.devices.api import DeviceError, DeviceRefused, DeviceTimeout, DeviceUnreachable
from harness.devices.opcua_pki import ClientCertificate
from harness.reporting.texts import Msg

STEPS = ("endpoint", "channel", "session", "activation", "use")
# Requests a careless server may not check, sent over a secured channel (Part 4 5.6.2, 5.6.3 require both):
TAMPERING = {"no_client_certificate": "CreateSession without ClientCertificate",
             "forged_client_signature": "ActivateSession with a forged ClientSignature",
             "read_before_activation": "a Read on a session created but never activated"}
SECURED_ONLY = ("no_client_certificate", "forged_client_signature")  # attacks on a secured channel's proofs
SESSION_TIMEOUT_MS = 120_000  # an abandoned session (harness killed) is dropped by the device after this


# ---- identities -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Anonymous:
    def describe(self) -> str:
        return "anonymous"


@dataclass(frozen=True)
class UserPassword:
    """Any user name and password — the lab's (from the rig) or a wrong one, for negative checks."""

    user: str
    password: str = field(repr=False)

    def describe(self) -> str:
        return f"username:{self.user}"


@dataclass(frozen=True)
class X509Identity:
    """A user certificate and its key; ``label`` names it in evidence (trusted, untrusted, a rig role)."""

    certificate: Path
    key: Path
    label: str = "certificate"

    def describe(self) -> str:
        return f"certificate:{self.label}"


Identity = Anonymous | UserPassword | X509Identity


@dataclass(frozen=True)
class SessionSpec:
    """Everything a session is opened with; also the key under which a device keeps it open."""

    url: str
    policy: SecurityPolicy
    mode: SecurityMode
    identity: Identity
    application: ClientCertificate = field(compare=True)
    timeout_s: float = 1.0
    skip_endpoint_matching: bool = False
    tamper: str | None = None  # an attack on a secured channel's session requests (TAMPERING)

    def describe(self) -> str:
        attack = " (skipping endpoint matching)" if self.skip_endpoint_matching else \
            f" ({TAMPERING[self.tamper]})" if self.tamper else ""
        return f"{self.identity.describe()} over {self.policy.value}/{self.mode.value}{attack}"

    def certificates(self) -> str:
        """Which certificates this attempt sends, by file name: the evidence says what the device was shown
        (over SecurityPolicy None no application certificate is exchanged at all)."""
        user = self.identity.certificate.name if isinstance(self.identity, X509Identity) else None
        sent = [Msg("user certificate {user}", user=user)] if user else []
        if self.policy == SecurityPolicy.NONE:
            return Msg.joined("; ", [Msg("no application certificate (SecurityPolicy None)"), *sent])
        app = self.application.der.name
        session = Msg("none") if self.tamper == "no_client_certificate" else app
        return Msg.joined("; ", [Msg("channel {app}; CreateSession ClientCertificate {session}", app=app,
                                     session=session), *sent])


@dataclass(frozen=True)
class SessionAttempt:
    """How one attempt to open a session ended: accepted, or refused at ``step`` with this status."""

    accepted: bool
    outcome: str  # accepted | refused (by the device) | unreachable | timeout (no answer) | error (client-side)
    step: str | None  # where it was refused (endpoint, channel, session, activation, use); None if accepted
    status_code: int | None  # OPC UA StatusCode value of the refusal, when the device sent one
    status_name: str | None  # e.g. BadUserAccessDenied
    error: str | None  # what happened, in words (also for refusals without a status: a closed socket)
    policy: str
    mode: str
    identity: str
    skip_endpoint_matching: bool
    duration_s: float
    certificates: str = ""  # which certificates were sent (SessionSpec.certificates)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        how = f"{self.identity} over {self.policy}/{self.mode}"
        if self.accepted:
            return f"session accepted: {how} ({self.duration_s * 1000:.0f} ms)"
        return f"session refused at {self.step}: {how}: {self.status_name or self.error}"


class SessionRefused(DeviceRefused):
    """The device would not open the session; ``attempt`` says where and why."""

    def __init__(self, attempt: SessionAttempt) -> None:
        super().__init__(str(attempt), attempt.status_code or 0)
        self.attempt = attempt


# ---- exceptions as data -------------------------------------------------------------------------------
class BadStatus(Exception):
    """A bad StatusCode inside a result (a write's, a call's, a read value's), with what it answered."""

    def __init__(self, code: int, what: str) -> None:
        from asyncua import ua

        super().__init__(f"{what}: {ua.StatusCode(code).name}")
        self.code = code
        self.what = what


def status_of(exc: BaseException) -> tuple[int | None, str | None]:
    """(StatusCode value, name) an asyncua exception (ServiceFault) or a BadStatus carries, or (None, None)."""
    from asyncua import ua

    code = getattr(exc, "code", None)
    if isinstance(exc, ua.UaStatusCodeError | BadStatus) and isinstance(code, int):
        return code, ua.StatusCode(code).name
    return None, None


def is_transport_failure(exc: BaseException) -> bool:
    """The link or the device went away (retry on a new connection), as opposed to a refusal."""
    return isinstance(exc, OSError | ConnectionError | TimeoutError | asyncio.TimeoutError | EOFError)


# asyncua's gate refuses to send on a client it already knows is disconnected (asyncua/client/client.py)
_NOT_SENT = ("client is disconnected", "client is disconnecting")


def never_sent(exc: BaseException) -> bool:
    """The request never left the harness (the session died earlier, e.g. with a power cut), so even a method
    call that must not run twice may be sent again on a new session."""
    return isinstance(exc, ConnectionError) and str(exc) in _NOT_SENT


def as_device_error(exc: BaseException, device: str, what: str, timeout_s: float) -> DeviceError:
    """The Device API's error for a failed exchange (see DeviceRefused: code = StatusCode value)."""
    code, name = status_of(exc)
    if code is not None:
        what = exc.what if isinstance(exc, BadStatus) else what
        refusal = Msg("{what} refused with {status} (0x{code:08X})", what=what, status=name, code=code)
        return DeviceRefused(Msg("{device}: {refusal}", device=device, refusal=refusal), code)
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return DeviceTimeout(Msg("{device}: no answer to {what} within {timeout_s:g} s", device=device, what=what,
                                 timeout_s=timeout_s))
    if isinstance(exc, ConnectionRefusedError):
        return DeviceUnreachable(Msg("{device}: cannot connect for {what} (connection refused)", device=device,
                                     what=what))
    if isinstance(exc, OSError | ConnectionError | EOFError):
        return DeviceUnreachable(Msg("{device}: connection lost during {what} ({error}: {detail})", device=device,
                                     what=what, error=type(exc).__name__, detail=str(exc)))
    return DeviceError(Msg("{device}: {what} failed: {error}: {detail}", device=device, what=what,
                           error=type(exc).__name__, detail=str(exc)))


# ---- opening --------------------------------------------------------------------------------------------
class LiveSession:
    """An activated session and what it has learned: namespace array, resolved nodes."""

    def __init__(self, client: Any, spec: SessionSpec, attempt: SessionAttempt) -> None:
        self.client = client
        self.spec = spec
        self.attempt = attempt
        self._namespaces: list[str] | None = None
        self._nodes: dict[str, Any] = {}
        self._reads: dict[tuple[str, ...], Any] = {}  # node strings -> their ReadParameters (built once)
        self.cache: dict[str, Any] = {}  # what other modules learn once per session (e.g. the audit filter)

    async def node_id(self, text: str) -> Any:
        """A profile's node string as a NodeId of this session (``nsu=`` and browse paths resolved once)."""
        from asyncua import Node, ua

        cached = self._nodes.get(text)
        if cached is not None:
            return cached
        if text.startswith("/"):
            objects = Node(self.client.uaclient.session, ua.NodeId(ua.ObjectIds.ObjectsFolder))
            nid = (await objects.get_child(text)).nodeid
        elif text.startswith("nsu="):
            uri, _, rest = text[4:].partition(";")
            if self._namespaces is None:
                self._namespaces = await self.client.get_namespace_array()
            if uri not in self._namespaces:
                raise DeviceError(f"the device has no namespace {uri!r} (node {text}); it has "
                                  f"{', '.join(self._namespaces)}")
            nid = ua.NodeId.from_string(f"ns={self._namespaces.index(uri)};{rest}")
        else:
            nid = ua.NodeId.from_string(text)
        self._nodes[text] = nid
        return nid

    def node(self, nid: Any) -> Any:
        from asyncua import Node

        return Node(self.client.uaclient.session, nid)

    async def read_values(self, nids: list[Any]) -> list[Any]:
        """One Read request for all ``nids``: their DataValues (status per value, not raised)."""
        return list(await self.client.uaclient.read(_read_parameters(nids)))

    async def read_nodes(self, texts: tuple[str, ...]) -> list[Any]:
        """``read_values`` of a profile's node strings, the request's parameters resolved and built once per
        session (a check reads the same quantities again and again; asyncua only serialises them)."""
        params = self._reads.get(texts)
        if params is None:
            params = self._reads[texts] = _read_parameters([await self.node_id(t) for t in texts])
        return list(await self.client.uaclient.read(params))

    async def write_value(self, nid: Any, variant: Any) -> Any:
        """The device's StatusCode for writing ``variant`` to ``nid`` (not raised)."""
        from asyncua import ua

        params = ua.WriteParameters()
        params.NodesToWrite = [ua.WriteValue(NodeId=nid, AttributeId=ua.AttributeIds.Value,
                                             Value=ua.DataValue(variant))]
        return (await self.client.uaclient.write(params))[0]

    async def call(self, object_id: Any, method_id: Any, variants: list[Any]) -> Any:
        """The CallMethodResult (status, per-argument results, outputs) — not raised."""
        from asyncua import ua

        request = ua.CallMethodRequest(ObjectId=object_id, MethodId=method_id, InputArguments=variants)
        return (await self.client.uaclient.call([request]))[0]

    async def close(self) -> None:
        with contextlib.suppress(Exception):  # the device is gone or refuses: the socket goes anyway
            await asyncio.wait_for(self.client.close_session(), self.spec.timeout_s)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.client.close_secure_channel(), self.spec.timeout_s)
        self.client.disconnect_socket()


def _read_parameters(nids: list[Any]) -> Any:
    from asyncua import ua

    params = ua.ReadParameters()
    params.NodesToRead = [ua.ReadValueId(NodeId=n, AttributeId=ua.AttributeIds.Value) for n in nids]
    return params


@dataclass
class Slot:
    """One session a device keeps: what it is opened with and, while open, the live session."""

    spec: SessionSpec
    live: LiveSession | None = None


@dataclass(frozen=True)
class OfferedEndpoint:
    """One endpoint a device lists in GetEndpoints: what an ordinary client may match against."""

    url: str
    policy: str  # SecurityPolicy name, the fragment of its URI (None, Basic256Sha256, ...)
    mode: str  # None | Sign | SignAndEncrypt
    identities: tuple[str, ...]  # user token types offered: anonymous, username, certificate, issued

    def __str__(self) -> str:
        return f"{self.policy}/{self.mode} ({', '.join(self.identities) or 'no identity tokens'})"


async def get_endpoints(url: str, timeout_s: float) -> list[OfferedEndpoint]:
    """GetEndpoints over a transient SecurityPolicy None channel, as every client asks first."""
    from asyncua import Client, ua

    tokens = {ua.UserTokenType.Anonymous: "anonymous", ua.UserTokenType.UserName: "username",
              ua.UserTokenType.Certificate: "certificate", ua.UserTokenType.IssuedToken: "issued"}
    client = Client(url, timeout=timeout_s)
    try:
        described = await client.connect_and_get_server_endpoints()
    finally:
        client.disconnect_socket()
    return [OfferedEndpoint(e.EndpointUrl, (e.SecurityPolicyUri or "").rpartition("#")[2] or "None",
                            {ua.MessageSecurityMode.None_: "None"}.get(e.SecurityMode, e.SecurityMode.name),
                            tuple(tokens.get(t.TokenType, str(t.TokenType)) for t in e.UserIdentityTokens or []))
            for e in described]


async def open_session(spec: SessionSpec) -> tuple[LiveSession | None, SessionAttempt]:
    """Open a session as ``spec`` says; never raises for what the device does — the attempt says it."""
    from asyncua import Client

    client = Client(spec.url, timeout=spec.timeout_s)
    client.name = client.description = "tek-harness"
    client.application_uri = spec.application.application_uri
    client.product_uri = "urn:tek-harness"
    client.session_timeout = SESSION_TIMEOUT_MS
    t0 = time.monotonic()
    try:
        credentials = await _load_identity(client, spec.identity)
    except (OSError, ValueError) as exc:  # a missing or unreadable key file is the rig's fault, not the device's
        raise DeviceError(f"cannot load identity {spec.identity.describe()}: {exc}") from None
    step = "endpoint"
    created = False
    from harness.devices import opcua_steps  # the steps need this module's types: imported here, not at the top

    try:
        if spec.skip_endpoint_matching:
            steps = opcua_steps.skipping_endpoint_matching(client, spec, credentials)
        else:
            steps = opcua_steps.matched(client, spec, credentials)
        async for step in steps:
            created = created or step == "activation"
        attempt = _attempt(spec, t0, None, None)
        return LiveSession(client, spec, attempt), attempt
    except Exception as exc:
        await _abandon(client, created, spec.timeout_s)
        return None, _attempt(spec, t0, step, exc)
    except BaseException:  # cancelled (the caller's bound ran out): no await left, just the socket
        client.disconnect_socket()
        raise


async def _load_identity(client: Any, identity: Identity) -> tuple[str | None, str | None, Any]:
    """(user, password, user certificate) for ActivateSession; a certificate's key is loaded on the client."""
    if isinstance(identity, UserPassword):
        return identity.user, identity.password, None
    if isinstance(identity, X509Identity):
        await client.load_client_certificate(str(identity.certificate))
        await client.load_private_key(identity.key)
        return None, None, client.user_certificate
    return None, None, None


async def _abandon(client: Any, created: bool, timeout_s: float) -> None:
    if created:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.uaclient.close_session(True), timeout_s)
    with contextlib.suppress(Exception):
        client.disconnect_socket()


def _outcome_of(exc: BaseException, code: int | None) -> str:
    """Who ended an attempt that failed: only the device's own answer is a refusal — a Bad status, a GetEndpoints
    that lists no such endpoint, a connection it closed. Silence is a timeout; anything the client raised by
    itself (a signature it could not check, a bug) is an error: neither proves that the device refused."""
    if code is not None or "No matching endpoints" in str(exc):
        return "refused"
    if isinstance(exc, ConnectionRefusedError):
        return "unreachable"
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return "timeout"
    if isinstance(exc, ConnectionError | EOFError):
        return "refused"  # the device closed or reset the connection (a missing file of ours is an OSError: error)
    return "error"


def _attempt(spec: SessionSpec, t0: float, step: str | None, exc: BaseException | None) -> SessionAttempt:
    code, name = status_of(exc) if exc is not None else (None, None)
    error = None
    if exc is not None:
        error = f"{type(exc).__name__}: {exc}".strip().rstrip(":") if str(exc) else type(exc).__name__
        if "No matching endpoints" in str(exc):
            step = "endpoint"
    outcome = "accepted" if exc is None else _outcome_of(exc, code)
    return SessionAttempt(accepted=exc is None, outcome=outcome, step=step, status_code=code, status_name=name,
                          error=error, policy=spec.policy.value, mode=spec.mode.value,
                          identity=spec.identity.describe(), skip_endpoint_matching=spec.skip_endpoint_matching,
                          duration_s=round(time.monotonic() - t0, 6), certificates=spec.certificates())
