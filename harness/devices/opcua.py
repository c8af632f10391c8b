"""OPC UA driver: a synchronous Device over asyncua, run on the device's own event loop thread.

Sessions are opened per identity (a role's account from the rig, or any identity a negative check
names), policy and mode, and kept open for reuse; every exchange is bounded by the rig's request
timeout, retried on a fresh connection after a lost link (``timing.retries``), recorded in the
transcript, and a failure becomes DeviceUnreachable / DeviceTimeout / DeviceRefused (code = the
OPC UA StatusCode value, message naming it, e.g. BadUserAccessDenied) / NotDeclared.

Accounts: ``opcua_accounts``; endpoint: the first declared policy, SignAndEncrypt when declared (suites
that care say so: ``session(...)``, ``role=``); a suite's own session: ``opcua_handle``; values: ``opcua_values``;
the audit log (cl. 69): ``opcua_audit_access``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness.config.opcua_map import OpcuaMap, OpcuaPoint, Operation, PointKind, SecurityMode, SecurityPolicy
from harness.config.profile import Profile
from harness.config.rig import Dut, Timing
from harness.devices.api import (
    ClockReading,
    Device,
    DeviceError,
    DeviceRefused,
    DeviceTimeout,
    DeviceUnreachable,
    NotDeclared,
    Reading,
)
from harness.devices.opcua_accounts import Accounts, IdentityArg
from harness.devices.opcua_audit_access import AuditLogAccess
from harness.devices.opcua_handle import Session
from harness.devices.opcua_loop import LoopThread
from harness.devices.opcua_pki import Pki, ensure_pki
from harness.devices.opcua_session import (
    SECURED_ONLY,
    TAMPERING,
    Anonymous,
    LiveSession,
    OfferedEndpoint,
    SessionAttempt,
    SessionRefused,
    SessionSpec,
    Slot,
    as_device_error,
    get_endpoints,
    is_transport_failure,
    never_sent,
    open_session,
)
from harness.devices.opcua_values import (
    cast,
    check_status,
    input_types,
    jsonable,
    plain,
    reading,
    summary,
    to_device,
)
from harness.devices.transcript import Transcript
from harness.events import JournalEntry
from harness.quantities import CLOCK
from harness.reporting.texts import Msg

# asyncua logs every ServiceFault and lost socket; the transcript and our errors say it better.
logging.getLogger("asyncua").setLevel(logging.CRITICAL)

# Status codes that mean "this session is gone" (device restarted, session timed out): reopen and retry.
_SESSION_GONE = ("BadSessionIdInvalid", "BadSessionClosed", "BadSessionNotActivated", "BadSecureChannelIdInvalid",
                 "BadSecureChannelClosed", "BadConnectionClosed", "BadServerHalted")
CLOCK_RESOLUTION_S = 1e-7  # OPC UA DateTime counts 100 ns ticks


class OpcuaDevice(AuditLogAccess, Device):
    """An OPC UA DUT (controller) reached over opc.tcp."""

    def __init__(self, name: str, profile: Profile, dut: Dut, timing: Timing,
                 transcript: Transcript | None = None, endpoint: dict[str, Any] | None = None,
                 pki_dir: Path | str | None = None) -> None:
        super().__init__(name, profile)
        if profile.opcua is None:
            raise NotDeclared(Msg("profile {model} has no opcua section", model=profile.model))
        self.map: OpcuaMap = profile.opcua
        self.timeout = timing.request_timeout_s
        self.retries = timing.retries
        self.transcript = transcript
        self._dut = dut
        endpoint = endpoint or {}
        tcp = dut.transport.tcp
        host = str(endpoint.get("host", tcp.host if tcp else "127.0.0.1"))
        port = endpoint.get("port", tcp.port if tcp else None)
        if port in (None, "auto"):
            raise DeviceError(Msg("{name}: no TCP port for the OPC UA endpoint (rig transport.tcp)", name=name))
        self.url = f"opc.tcp://{f'[{host}]' if ':' in host else host}:{int(port)}{self.map.endpoint_path}"
        pki = pki_dir or endpoint.get("pki_dir") or (transcript.path.parent / "pki" if transcript else None)
        self._pki_dir = Path(pki) if pki else None
        self._pki: Pki | None = None
        self._loop: LoopThread | None = None
        self._slots: dict[SessionSpec, Slot] = {}
        self._by_operation: dict[tuple[Operation, str | None], Slot] = {}
        self._variant_types: dict[str, Any] = {}  # node string -> VariantType, learned once per device
        self._argument_types: dict[str, list[Any] | None] = {}  # method node -> input VariantTypes
        self._read_plans: dict[tuple[str, ...], tuple[list[tuple[str, OpcuaPoint]], tuple[str, ...], str]] = {}
        self._lock = threading.RLock()
        self._update: Any = None
        self.accounts = Accounts(name, profile.model, self.map, dut, lambda: self.pki)

    # ---- plumbing: loop, PKI, specs ---------------------------------------------------------------
    @property
    def loop(self) -> LoopThread:
        with self._lock:
            if self._loop is None:
                self._loop = LoopThread(self.name)
            return self._loop

    @property
    def pki(self) -> Pki:
        """The harness's client certificates (OUTDIR/pki, made on first need; the rig's own if it names one)."""
        with self._lock:
            if self._pki is None:
                directory = self._pki_dir or Path(tempfile.mkdtemp(prefix="tek-harness-pki-"))
                self._pki = ensure_pki(directory, self._dut.client_certificate, self._dut.client_key)
            return self._pki

    def spec(self, role: str | None = None, identity: IdentityArg = None, policy: SecurityPolicy | str | None = None,
             mode: SecurityMode | str | None = None, skip_endpoint_matching: bool = False,
             application: str = "trusted", operation: Operation = Operation.READ,
             tamper: str | None = None) -> SessionSpec:
        """What a session is opened with (see ``session``; ``tamper``: an attack on a secured channel's session
        requests, one of ``opcua_session.TAMPERING``)."""
        if role is not None and identity is not None:
            raise ValueError("give a role (the rig's account for it) or an identity, not both")
        chosen = self.accounts.identity(identity) if identity is not None else self.accounts.for_role(role, operation)
        sec = self.map.security
        pol = SecurityPolicy(policy) if policy is not None else (sec.secure_policies or [SecurityPolicy.NONE])[0]
        if skip_endpoint_matching:
            if (policy, mode) not in ((None, None), ("None", "None"), ("None", None)):
                raise ValueError("skipping endpoint matching is a SecurityPolicy None channel: give no policy/mode")
            pol, mod = SecurityPolicy.NONE, SecurityMode.NONE
        elif mode is not None:
            mod = SecurityMode(mode)
        elif pol == SecurityPolicy.NONE:
            mod = SecurityMode.NONE
        else:
            mod = SecurityMode.SIGN_AND_ENCRYPT if SecurityMode.SIGN_AND_ENCRYPT in sec.modes or not sec.secure_modes \
                else sec.secure_modes[0]
        if application not in ("trusted", "untrusted"):
            raise ValueError("application is trusted or untrusted (which harness certificate the channel uses)")
        if tamper is not None and (tamper not in TAMPERING or (tamper in SECURED_ONLY and pol == SecurityPolicy.NONE)):
            raise ValueError(f"tamper is one of {', '.join(TAMPERING)} ({', '.join(SECURED_ONLY)} need a secure "
                             "policy)")
        app = self.pki.trusted if application == "trusted" else self.pki.untrusted
        return SessionSpec(self.url, pol, mod, chosen, app, self.timeout, skip_endpoint_matching,
                           tamper)

    # ---- sessions -------------------------------------------------------------------------------------
    def endpoints(self) -> list[OfferedEndpoint]:
        """What the device offers in GetEndpoints (policy, mode, identity tokens of each endpoint)."""
        t_sent = time.time()
        spec = SessionSpec(self.url, SecurityPolicy.NONE, SecurityMode.NONE, Anonymous(), self.pki.trusted,
                           self.timeout)
        try:
            offered = self.loop.run(get_endpoints(self.url, self.timeout), self.timeout * 3 + 1)
        except Exception as exc:
            error = as_device_error(exc, self.name, "GetEndpoints", self.timeout)
            self._record("endpoints", spec, 0, t_sent, time.time(), error=str(error))
            raise error from None
        self._record("endpoints", spec, 0, t_sent, time.time(), result=[str(e) for e in offered])
        return offered

    def attempt_session(self, **how: Any) -> SessionAttempt:
        """Try to open a session (arguments as ``session``) and close it again: the outcome as data, never raised
        for what the device does."""
        live, attempt = self._open(self.spec(**how))
        if live is not None:
            self.loop.run(live.close(), self.timeout * 3 + 1)
        return attempt

    @contextlib.contextmanager
    def session(self, role: str | None = None, identity: IdentityArg = None,
                policy: SecurityPolicy | str | None = None, mode: SecurityMode | str | None = None,
                skip_endpoint_matching: bool = False, application: str = "trusted") -> Iterator[Session]:
        """A session of its own, closed on exit. ``role``: the rig's account for that role; ``identity``:
        anonymous, (user, password) — any, for negative checks —, certificate / untrusted_certificate (the
        harness's), or an identity object; ``skip_endpoint_matching``: the attack (policy None channel, raw
        CreateSession/ActivateSession). Refused: raises SessionRefused, whose ``attempt`` says where and why."""
        spec = self.spec(role, identity, policy, mode, skip_endpoint_matching, application)
        live, attempt = self._open(spec)
        if live is None:
            raise SessionRefused(attempt)
        slot = Slot(spec, live)
        try:
            yield Session(self, slot, attempt)
        finally:
            if slot.live is not None:
                with contextlib.suppress(Exception):
                    self.loop.run(slot.live.close(), self.timeout * 3 + 1)
                slot.live = None

    def _open(self, spec: SessionSpec) -> tuple[LiveSession | None, SessionAttempt]:
        bound = self.timeout * 8 + 5  # endpoints, channel, session, activation, (use): RSA work included
        try:
            live, attempt = self.loop.run(open_session(spec), bound)
        except TimeoutError:
            live, attempt = None, SessionAttempt(False, "timeout", "channel", None, None,
                                                 f"no session within {bound:g} s", spec.policy.value,
                                                 spec.mode.value, spec.identity.describe(),
                                                 spec.skip_endpoint_matching, bound, spec.certificates())
        self._record("session", spec, 0, 0.0, attempt.duration_s, **attempt.as_dict())
        return live, attempt

    def _live(self, slot: Slot) -> LiveSession:
        """The slot's session, opened when it has none. Unreachable/timeout are retryable; a refusal is not."""
        if slot.live is not None:
            return slot.live
        with self._lock:  # two threads asking at once open one session
            return slot.live if slot.live is not None else self._open_slot(slot)

    def _open_slot(self, slot: Slot) -> LiveSession:
        live, attempt = self._open(slot.spec)
        if live is None:
            if attempt.outcome == "unreachable":
                raise DeviceUnreachable(Msg("{device}: cannot connect to {url} ({error})", device=self.name,
                                            url=self.url, error=attempt.error))
            if attempt.outcome == "error":
                raise DeviceError(Msg("{device}: opening a session failed in the harness: {error}", device=self.name,
                                      error=attempt.error))
            if attempt.outcome == "timeout":
                raise DeviceTimeout(Msg("{device}: {url} did not answer within {timeout:g} s at {step} ({error})",
                                        device=self.name, url=self.url, timeout=self.timeout, step=attempt.step,
                                        error=attempt.error))
            raise SessionRefused(attempt)
        slot.live = live
        return live

    def _slot(self, operation: Operation, role: str | None) -> Slot:
        """The kept session for ``operation`` as ``role`` (default: the least privileged role allowed); roles
        that resolve to the same account share one."""
        slot = self._by_operation.get((operation, role))
        if slot is not None:
            return slot
        spec = self.spec(role=role, operation=operation)
        with self._lock:
            slot = self._slots.get(spec)
            if slot is None:
                slot = self._slots[spec] = Slot(spec)
            self._by_operation[(operation, role)] = slot
            return slot

    def _drop(self, slot: Slot) -> None:
        live, slot.live = slot.live, None
        if live is not None:
            with contextlib.suppress(Exception):
                self.loop.run(_quick_close(live), self.timeout + 1)

    # ---- one exchange, bounded, retried, recorded ------------------------------------------------------
    def _exchange(self, op: str, slot: Slot, work: Callable[[LiveSession], Coroutine[Any, Any, Any]],
                  budget_s: float | None = None, summary: Callable[[Any], Any] | None = None,
                  what: str | None = None, idempotent: bool = True, **info: Any) -> tuple[Any, float, float]:
        """Run ``work`` in the slot's session. After a lost link it is retried on a new session — unless it is
        not idempotent (a method call: Activate twice is not Activate once) and may have reached the device."""
        budget = budget_s if budget_s is not None else self.timeout * 3
        failure: DeviceError | None = None
        for attempt in range(self.retries + 1):
            t_sent = time.time()
            try:
                live = self._live(slot)
            except (DeviceUnreachable, DeviceTimeout) as exc:
                failure = exc
                self._record(op, slot.spec, attempt, t_sent, time.time(), error=str(exc), **info)
                time.sleep(min(0.2, self.timeout))
                continue
            t_sent = time.time()
            try:
                result = self.loop.run(work(live), budget)  # on expiry cancelled on the loop: TimeoutError
            except Exception as exc:
                t_received = time.time()
                error = as_device_error(exc, self.name, what or op, self.timeout)
                gone = isinstance(error, DeviceRefused) and any(n in str(error) for n in _SESSION_GONE)
                if is_transport_failure(exc) or gone:
                    self._drop(slot)
                    failure = error
                    self._record(op, slot.spec, attempt, t_sent, t_received, error=str(error), **info)
                    if not idempotent and not gone and not never_sent(exc):
                        error.args = (f"{error} — not retried: the device may have executed it",)
                        raise error from None
                    continue
                status = {"status": error.code} if isinstance(error, DeviceRefused) else {}
                self._record(op, slot.spec, attempt, t_sent, t_received, error=str(error), **status, **info)
                raise error from None
            t_received = time.time()
            self._record(op, slot.spec, attempt, t_sent, t_received,
                         result=summary(result) if summary else result, **info)
            return result, t_sent, t_received
        assert failure is not None
        raise failure

    def _record(self, op: str, spec: SessionSpec, attempt: int, t_sent: float, t_received: float,
                **fields: Any) -> None:
        if self.transcript is not None:
            self.transcript.record(self.name, op=op, session=spec.describe(), attempt=attempt,
                                   latency_ms=round((t_received - t_sent) * 1000, 3),
                                   **{k: jsonable(v) for k, v in fields.items()})

    # ---- reads, writes, calls (shared by the Device API and Session) ------------------------------------
    def _point(self, quantity: str) -> OpcuaPoint:
        point = self.map.points.get(quantity)
        if point is None:
            raise NotDeclared(Msg("{device}: profile {model} declares no node for {quantity}", device=self.name,
                                  model=self.profile.model, quantity=quantity))
        return point

    def _read_points(self, slot: Slot, quantities: Sequence[str]) -> dict[str, Reading]:
        key = tuple(quantities)
        plan = self._read_plans.get(key)
        if plan is None:  # worked out once per set of quantities, not on every read
            points = [(q, self._point(q)) for q in quantities]
            plan = self._read_plans[key] = (points, tuple(p.node for _, p in points),
                                            f"read of {', '.join(q for q, _ in points)}")
        points, nodes, what = plan

        async def work(live: LiveSession) -> list[Any]:
            values = await live.read_nodes(nodes)
            for (q, p), dv in zip(points, values, strict=True):
                if dv.StatusCode is not None and not dv.StatusCode.is_good():
                    check_status(dv.StatusCode, f"read of {q} ({p.node})")
            return [dv.Value.Value if dv.Value is not None else None for dv in values]

        values, t0, t1 = self._exchange("read", slot, work, what=what, nodes=list(nodes))
        return {q: reading(q, p, v, t0, t1) for (q, p), v in zip(points, values, strict=True)}

    def _read_node(self, slot: Slot, node: str) -> Any:
        async def work(live: LiveSession) -> Any:
            dv = (await live.read_values([await live.node_id(node)]))[0]
            check_status(dv.StatusCode, f"read of {node}")
            return plain(dv.Value.Value) if dv.Value is not None else None

        return self._exchange("read", slot, work, what=f"read of {node}", nodes=[node])[0]

    def _write_node(self, slot: Slot, node: str, value: Any, what: str, as_type: str | None = None) -> None:
        async def work(live: LiveSession) -> None:
            from asyncua import ua

            nid = await live.node_id(node)
            if as_type is not None:  # sent as this built-in type whatever the node's (a negative check's write)
                variant = ua.Variant(value, getattr(ua.VariantType, as_type))
            else:
                vtype = self._variant_types.get(node)
                if vtype is None:
                    vtype = self._variant_types[node] = await live.node(nid).read_data_type_as_variant_type()
                variant = ua.Variant(cast(value, vtype), vtype)
            check_status(await live.write_value(nid, variant), what)

        typed = {"as_type": as_type} if as_type else {}
        self._exchange("write", slot, work, what=what, node=node, value=value, **typed)

    def _call_node(self, slot: Slot, object_node: str, method_node: str, args: Sequence[Any], what: str,
                   budget_s: float | None = None) -> Any:
        async def work(live: LiveSession) -> Any:
            from asyncua import ua

            oid, mid = await live.node_id(object_node), await live.node_id(method_node)
            if method_node not in self._argument_types:
                self._argument_types[method_node] = await input_types(live, mid)
            types = self._argument_types[method_node] or []
            variants = [ua.Variant(cast(a, types[i]), types[i]) if i < len(types) and types[i] is not None
                        else ua.Variant(a) for i, a in enumerate(args)]
            result = await live.call(oid, mid, variants)
            for i, status in enumerate(result.InputArgumentResults or []):
                check_status(status, f"{what}: argument {i + 1}")
            check_status(result.StatusCode, what)
            outputs = [plain(v.Value) for v in result.OutputArguments or []]
            return None if not outputs else outputs[0] if len(outputs) == 1 else outputs

        return self._exchange("call", slot, work, budget_s=budget_s, what=what, idempotent=False, method=method_node,
                              args=[summary(a) for a in args])[0]

    # ---- Device API ---------------------------------------------------------------------------------------
    def read_many(self, quantities: Sequence[str]) -> dict[str, Reading]:
        return self._read_points(self._slot(Operation.READ, None), quantities)

    def read_clock(self) -> ClockReading:
        point, tz = self._clock()
        got = self._read_points(self._slot(Operation.READ, None), [CLOCK])[CLOCK]
        value: Any = got.value
        if not isinstance(value, datetime):
            raise DeviceError(Msg("{device}: the clock node {node} holds {value!r}, not a DateTime", device=self.name,
                                  node=point.node, value=value))
        return ClockReading(value.astimezone(tz), got.t_sent, got.t_received, CLOCK_RESOLUTION_S)

    def set_clock(self, when: datetime, role: str | None = None) -> None:
        point, _ = self._clock()
        if when.tzinfo is None:
            raise ValueError("set_clock needs an aware datetime")
        if self.profile.clock is not None and not self.profile.clock.writable:
            raise DeviceError(Msg("{device}: the clock is not declared writable", device=self.name))
        slot = self._slot(Operation.WRITE_PARAMETER, role)
        self._write_node(slot, point.node, when.astimezone(UTC), "set clock")

    def _clock(self) -> tuple[OpcuaPoint, Any]:
        point = self.map.points.get(CLOCK)
        if point is None or self.profile.clock is None:
            raise NotDeclared(Msg("{device}: profile {model} declares no clock ({CLOCK})", device=self.name,
                                  model=self.profile.model, CLOCK=CLOCK))
        return point, self.profile.clock.tzinfo

    def write(self, quantity: str, value: float | int, role: str | None = None) -> None:
        """Write a setpoint or parameter (in canonical units) as ``role``, or the least privileged role allowed."""
        point = self._point(quantity)
        operation = point.kind.write_operation
        if operation is None or point.kind == PointKind.CLOCK:
            raise DeviceError(Msg("{device}: {quantity} is a {kind} point, not writable (Session.write tries anyway, "
                                  "for negative checks)", device=self.name, quantity=quantity, kind=point.kind.value))
        self._write_node(self._slot(operation, role), point.node, to_device(point, value), f"write of {quantity}")

    def call(self, method_name: str, *args: Any, role: str | None = None) -> Any:
        """Call a declared method as ``role`` (default: the least privileged role its kind allows)."""
        method = self.map.methods.get(method_name)
        if method is None:
            raise NotDeclared(Msg("{device}: profile {model} declares no method {method_name!r}", device=self.name,
                                  model=self.profile.model, method_name=method_name))
        return self._call_node(self._slot(method.kind, role), method.object, method.method, args,
                               f"call of {method_name}")

    def read_journal(self) -> list[JournalEntry]:
        raise NotDeclared(Msg("{device}: a controller keeps an audit log, not a meter journal (read_audit_log)",
                              device=self.name))

    def probe(self) -> None:
        self.read(next(iter(self.map.points)))

    def settings(self) -> list[str]:
        return self.map.settings()

    def close(self) -> None:
        with self._lock:
            if self._loop is None:
                return
            lives = [s.live for s in self._slots.values() if s.live is not None]
            for slot in self._slots.values():
                slot.live = None
            loop, self._loop = self._loop, None

        async def close_all() -> None:
            await asyncio.gather(*(live.close() for live in lives), return_exceptions=True)

        loop.close(close_all(), timeout=self.timeout * 2 + 1)

    # ---- software update (cl. 70) -------------------------------------------------------------------------
    @property
    def update(self) -> Any:
        """The update helpers (``harness.devices.opcua_update.FirmwareUpdate``) for the profile's ``update``."""
        if self.map.update is None:
            raise NotDeclared(Msg("{device}: profile {model} declares no software update (opcua.update)",
                                  device=self.name, model=self.profile.model))
        if self._update is None:
            from harness.devices.opcua_update import FirmwareUpdate

            self._update = FirmwareUpdate(self, self.map.update)
        return self._update


async def _quick_close(live: LiveSession) -> None:
    """A session that failed mid-exchange: close what can be closed without waiting on a dead device."""
    with contextlib.suppress(Exception):
        live.client.disconnect_socket()
