"""The simulated controller behaves like a secured controller, seen only through a raw asyncua client.

One golden simulator serves most checks (module-scoped); it is power-cut (SIGKILL) and restarted
by the last tests. One more simulator carries every seeded defect at once — they break different
things, so each test proves its own symptom — and is power-cut once for the two defects that only
a power cut shows.
"""

from __future__ import annotations

import ast
import asyncio
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from asyncua import Client, ua
from asyncua.crypto.cert_gen import dump_private_key_as_pem, generate_private_key, generate_self_signed_app_certificate
from asyncua.crypto.security_policies import SecurityPolicyAes128Sha256RsaOaep, SecurityPolicyBasic256Sha256
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

import harness.conformance
from harness.conformance.wire.opcua_fuzz import hello
from harness.fault_injection.firmware import corrupted, truncated, unsigned, wrongly_signed
from harness.fault_injection.ports import free_port
from harness.resources import builtin_profile
from harness.simulators.controller.audit import SHORT_CAPACITY_DIVISOR, AuditLog
from harness.simulators.controller.profile import ControllerProfile, Lockout, load_controller_profile
from harness.simulators.controller.users import LockoutTracker
from harness.simulators.defects import CONTROLLER_DEFECTS
from harness.simulators.wire_faults import CRASH_EXIT
from tests.conftest import run_cli

# Under xdist every worker that runs one of these tests starts its own simulators (module scope is per
# worker); the tests make no assumption about which others ran before them on the same simulator, except
# that the year of history comes last. With `--dist loadgroup` the group keeps them on one worker.
pytestmark = pytest.mark.xdist_group("controller-sim")

PROFILE = load_controller_profile(builtin_profile("tek-sim-pc1.yaml"))
USERS = {"administrator": ("admin1", "adm-secret-1"), "operator": ("oper1", "op-secret-1"),
         "viewer": ("view1", "view-secret-1")}
S = ua.StatusCodes


# ---- the simulator process ---------------------------------------------------------------------------
@dataclass
class Pki:
    trusted: tuple[Path, Path]  # (cert DER, key PEM)
    untrusted: tuple[Path, Path]


@dataclass
class Sim:
    state_dir: Path
    pki: Pki
    defects: str = ""
    port: int = field(default_factory=free_port)
    control_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    started_s: float = 0.0

    @property
    def url(self) -> str:
        return f"opc.tcp://127.0.0.1:{self.port}{PROFILE.endpoint_path}"

    def start(self) -> Sim:
        users = ",".join(f"{u}:{p}:{role}" for role, (u, p) in USERS.items())
        t0 = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "harness", "sim", "controller", "--state-dir", str(self.state_dir),
             "--tcp", f"127.0.0.1:{self.port}", "--control", str(self.control_port), "--users", users,
             "--trust", str(self.pki.trusted[0]), "--defects", self.defects],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"simulator exited: {self.proc.stdout.read().decode()[-2000:]}")  # type: ignore[union-attr]
            try:
                self.control(op="status")
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    self.started_s = time.monotonic() - t0
                    return self
            except OSError:
                time.sleep(0.05)
        self.kill()
        raise AssertionError("simulator did not come up within 20 s")

    def control(self, **req: Any) -> dict[str, Any]:
        with socket.create_connection(("127.0.0.1", self.control_port), timeout=10) as s:
            s.sendall(json.dumps(req).encode() + b"\n")
            reply = json.loads(s.makefile().readline())
        assert reply.get("ok"), reply
        return reply

    def kill(self) -> None:
        """Power cut: SIGKILL by PID."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


def _certificate(directory: Path, name: str) -> tuple[Path, Path]:
    key = generate_private_key()
    cert = generate_self_signed_app_certificate(
        key, f"tek-harness {name}", {}, [x509.UniformResourceIdentifier(f"urn:tek-harness:{name}"),
                                         x509.DNSName("localhost")], extended=[ExtendedKeyUsageOID.CLIENT_AUTH])
    paths = directory / f"{name}.der", directory / f"{name}.pem"
    paths[0].write_bytes(cert.public_bytes(Encoding.DER))
    paths[1].write_bytes(dump_private_key_as_pem(key))
    return paths


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    return Pki(_certificate(d, "harness-client"), _certificate(d, "untrusted-client"))


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[Sim]:
    s = Sim(tmp_path_factory.mktemp("controller") / "state", pki).start()
    try:
        yield s
    finally:
        s.kill()


@pytest.fixture(scope="module")
def bad_sim(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[Sim]:
    s = Sim(tmp_path_factory.mktemp("controller-defects") / "state", pki, defects=",".join(CONTROLLER_DEFECTS))
    s.start()
    try:
        yield s
    finally:
        s.kill()


# ---- a raw asyncua client --------------------------------------------------------------------------
async def connect(sim: Sim, role: str | None = "administrator", *, user: tuple[str, str] | None = None,
                  cert: str = "trusted", identity_cert: bool = False, policy: Any = SecurityPolicyBasic256Sha256,
                  mode: ua.MessageSecurityMode = ua.MessageSecurityMode.SignAndEncrypt) -> Client:
    client = Client(sim.url, timeout=5)
    der, key = sim.pki.trusted if cert == "trusted" else sim.pki.untrusted
    client.application_uri = f"urn:tek-harness:{der.stem}"
    await client.set_security(policy, str(der), str(key), mode=mode)
    if identity_cert:
        await client.load_client_certificate(str(der))
        await client.load_private_key(str(key))
    elif user or role:
        name, password = user or USERS[role]  # type: ignore[index]
        client.set_user(name)
        client.set_password(password)
    await client.connect()
    return client


def node(client: Client, text: str, namespaces: list[str]) -> ua.NodeId:
    """Profile NodeId text (nsu=…) resolved against the server's namespace array."""
    if text.startswith("nsu="):
        uri, rest = text[4:].split(";", 1)
        return ua.NodeId.from_string(f"ns={namespaces.index(uri)};{rest}")
    return ua.NodeId.from_string(text)


def run(coro: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(coro())


class Session:
    """Connect, resolve the profile's nodes, disconnect — for one test's async body."""

    def __init__(self, sim: Sim, role: str | None = "administrator", **kw: Any) -> None:
        self.sim, self.role, self.kw = sim, role, kw

    async def __aenter__(self) -> Session:
        self.client = await connect(self.sim, self.role, **self.kw)
        self.ns = await self.client.get_namespace_array()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.client.disconnect()

    def nid(self, text: str) -> ua.NodeId:
        return node(self.client, text, self.ns)

    async def read(self, point: str) -> Any:
        return await self.client.get_node(self.nid(PROFILE.points[point].node.text)).read_value()

    async def write(self, point: str, value: Any, vtype: ua.VariantType = ua.VariantType.Double) -> None:
        await self.client.get_node(self.nid(PROFILE.points[point].node.text)).write_value(ua.Variant(value, vtype))

    async def call(self, obj: str, method: str, *args: Any) -> Any:
        return await self.client.get_node(self.nid(obj)).call_method(self.nid(method), *args)

    async def update(self, name: str, *args: Any) -> Any:
        u = PROFILE.update
        assert u is not None
        return await self.call(u.object.text, u.methods[name].text, *args)

    async def update_state(self) -> str:
        assert PROFILE.update is not None
        return str(await self.client.get_node(self.nid(PROFILE.update.state.text)).read_value())

    async def history(self, start: datetime | None = None, end: datetime | None = None) -> list[Any]:
        assert PROFILE.audit is not None
        source = self.client.get_node(self.nid(PROFILE.audit.source.text))
        return await source.read_event_history(start, end, evtypes=self.client.get_node(
            self.nid(PROFILE.audit.event_type.text)))

    async def transfer(self, image: bytes) -> None:
        chunk = PROFILE.update.chunk_bytes if PROFILE.update else 65536
        for offset in range(0, len(image), chunk):
            await self.update("transfer", ua.Variant(image[offset:offset + chunk], ua.VariantType.ByteString),
                              ua.Variant(offset, ua.VariantType.UInt32), ua.Variant(len(image), ua.VariantType.UInt32))

    async def wait_state(self, *states: str, timeout_s: float = 10.0) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            state = await self.update_state()
            if state in states:
                return state
            await asyncio.sleep(0.02)
        raise AssertionError(f"update state is {state}, not {states}, after {timeout_s} s")


def status_of(exc: BaseException) -> str:
    code = getattr(exc, "code", None)
    return ua.StatusCode(code).name if code is not None else type(exc).__name__


async def refused(coro: Awaitable[Any]) -> str:
    """The status name an operation is refused with ('' if it was accepted)."""
    try:
        await coro
    except (ua.UaStatusCodeError, ua.UaError) as exc:
        return status_of(exc)
    return ""


def kit(sim: Sim, name: str) -> bytes:
    files = {"current": "pc1-2.1.0.img", "next": "pc1-2.2.0.img", "below_min": "pc1-1.9.0.img",
             "unhealthy": "pc1-2.3.0-bad.img"}
    return (sim.state_dir / "vendor" / files[name]).read_bytes()


def device_now(sim: Sim, offset_s: float = 0.0) -> datetime:
    """The device clock (UTC), which earlier tests on the same simulator may have moved on."""
    return datetime.fromtimestamp(sim.control(op="status")["utc"] + offset_s, UTC)


# ---- the command line and the catalogue --------------------------------------------------------------
def test_catalogue_and_command_line():
    expected = {"update_accepts_unsigned": "KZ-70-02", "update_accepts_corrupted": "KZ-70-03",
                "update_no_auto_rollback": "KZ-70-04", "update_rollback_loses_config": "KZ-70-05",
                "update_power_loss_bricks": "KZ-70-06", "auth_allows_anonymous": "KZ-66-01",
                "auth_accepts_none_policy": "KZ-66-02", "auth_no_lockout": "KZ-76-02",
                "auth_default_password": "KZ-76-03", "role_viewer_can_write": "KZ-78-01",
                "log_missing_user": "KZ-69-01", "log_clearable_by_operator": "KZ-69-02", "log_volatile": "KZ-69-03",
                "endpoint_extra_policy": "KZ-68-08", "unknown_node_wrong_status": "KZ-68-09",
                "write_wrong_type_accepted": "KZ-68-10", "access_denied_wrong_status": "KZ-68-11",
                "auth_trusts_any_certificate": "KZ-66-03", "auth_ignores_password": "KZ-76-01",
                "auth_session_certificate_optional": "KZ-66-03", "identity_writable": "KZ-78-01",
                "auth_skips_client_signature": "KZ-66-03", "session_usable_unactivated": "KZ-66-01",
                "log_capacity_short": "KZ-69-04", "update_not_logged": "KZ-70-01",
                "update_accepts_downgrade": "KZ-70-07", "update_no_indication": "KZ-70-08",
                "update_config_write_ignored": "KZ-70-05",
                "crash_on_malformed_hello": "KZ-49-01", "opcua_hang_on_flood": "KZ-49-02",
                "opcua_connection_limit_exhausts": "KZ-49-03", "opcua_half_open_blocks": "KZ-49-04"}
    assert {d.name: d.expect for d in CONTROLLER_DEFECTS.values()} == expected
    res = run_cli("sim", "controller", "--list-defects")
    assert res.returncode == 0 and "update_power_loss_bricks" in res.stdout and "KZ-70-06" in res.stdout
    res = run_cli("sim", "controller", "--state-dir", "/tmp/unused", "--tcp", "127.0.0.1:1", "--defects", "nope")
    assert res.returncode == 2 and "unknown defect" in res.stderr
    res = run_cli("sim", "controller", "--state-dir", "/tmp/unused", "--tcp", "10.0.0.1:4840")
    assert res.returncode == 2 and "loopback" in res.stderr


# ---- endpoints, sessions, identities -----------------------------------------------------------------
def test_endpoints_are_the_declared_policies_and_modes_only(sim):
    async def body():
        endpoints = await Client(sim.url, timeout=5).connect_and_get_server_endpoints()
        offered = {(e.SecurityPolicyUri.split("#")[1], e.SecurityMode.name) for e in endpoints}
        declared = {(p, m) for p in PROFILE.policies for m in PROFILE.modes}
        assert offered == declared and not any(p == "None" for p, _ in offered)
        tokens = {t.TokenType.name for e in endpoints for t in e.UserIdentityTokens}
        assert tokens == {"UserName", "Certificate"}
    run(body)


def test_every_point_reads_with_its_type(sim):
    async def body():
        async with Session(sim, "viewer") as s:
            values = {name: await s.read(name) for name in PROFILE.points}
        assert values["firmware_version"] == "2.1.0" and values["serial_number"]
        assert abs((values["clock"] - device_now(sim)).total_seconds()) < 5
        assert isinstance(values["pump_running"], bool)
        assert 20 <= values["supply_setpoint"] <= 120 and 0 < values["supply_pressure"] < 10
    run(body)


def test_none_policy_session_refused_even_without_endpoint_matching(sim):
    """LIBRARIES.md: a stock asyncua server gives this client a session (and its password in clear)."""
    async def body():
        client = Client(sim.url, timeout=5)  # SecurityPolicy None, no endpoint matching
        await client.connect_socket()
        try:
            await client.send_hello()
            await client.open_secure_channel()  # allowed: GetEndpoints needs it
            params = ua.CreateSessionParameters(
                ClientDescription=ua.ApplicationDescription(ApplicationUri="urn:attacker",
                                                            ApplicationType=ua.ApplicationType.Client),
                EndpointUrl=sim.url, SessionName="raw", ClientNonce=os.urandom(32), RequestedSessionTimeout=60000)
            created = await refused(client.uaclient.create_session(params))
            token = ua.UserNameIdentityToken(UserName=USERS["administrator"][0],
                                             Password=USERS["administrator"][1].encode())
            activated = await refused(client.uaclient.activate_session(ua.ActivateSessionParameters(
                UserIdentityToken=token)))
        finally:
            client.disconnect_socket()
        assert created == "BadSecurityPolicyRejected" and activated == "BadSecurityPolicyRejected"
        async with Session(sim) as s:
            entries = await s.history(t0)
        refusals = [e for e in entries if e.Category == "security" and "SecurityPolicy None" in e.Message.Text]
        assert len(refusals) >= 2 and all(e.Status is False for e in refusals)
    t0 = device_now(sim, -1)
    run(body)


def test_certificates_and_identities(sim):
    async def body():
        assert await refused(connect(sim, "administrator", cert="untrusted")) == "BadCertificateUntrusted"
        async with Session(sim, None, identity_cert=True) as s:  # a trusted certificate as identity
            assert await s.read("serial_number")
        client = Client(sim.url, timeout=5)  # anonymous over a trusted secure channel
        der, key = sim.pki.trusted
        await client.set_security(SecurityPolicyAes128Sha256RsaOaep, str(der), str(key),
                                  mode=ua.MessageSecurityMode.Sign)
        assert await refused(client.connect()) == "BadIdentityTokenRejected"
        assert await refused(connect(sim, user=("admin", "admin"))) == "BadUserAccessDenied"  # no factory account
        client = Client(sim.url, timeout=5)  # trusted channel, untrusted certificate as the user identity
        await client.set_security(SecurityPolicyBasic256Sha256, *map(str, sim.pki.trusted))
        await client.load_client_certificate(str(sim.pki.untrusted[0]))
        await client.load_private_key(str(sim.pki.untrusted[1]))
        assert await refused(client.connect()) == "BadUserAccessDenied"
    run(body)


def test_lockout_tracker_lock_and_delay():
    """Both lockout kinds a profile may declare (the golden profile uses ``lock``; ``delay`` holds answers)."""
    lock = LockoutTracker(Lockout(after_failures=2, kind="lock", duration_s=10))
    assert not lock.failed("u", 0.0) and lock.failed("u", 1.0) and lock.locked("u", 5.0)
    assert not lock.locked("u", 11.5) and lock.delay_s("u", 5.0) == 0
    delay = LockoutTracker(Lockout(after_failures=1, kind="delay", duration_s=2))
    assert delay.failed("u", 0.0) and not delay.locked("u", 1.0) and delay.delay_s("u", 1.0) == 2
    delay.succeeded("u")
    assert delay.delay_s("u", 1.0) == 0
    off = LockoutTracker(Lockout(after_failures=1, kind="lock", duration_s=10), enabled=False)
    assert not off.failed("u", 0.0) and not off.locked("u", 1.0)


def test_audit_log_keeps_capacity_newest_and_survives_a_torn_line(tmp_path):
    log = AuditLog(tmp_path, capacity=5)
    for i in range(12):
        log.record("control_action", 1000.0 + i, "oper1", True, "Process", f"action {i}")
    assert [e.message for e in log.between(None, None)] == [f"action {i}" for i in range(7, 12)]
    log.close()
    with (tmp_path / AuditLog.FILE).open("ab") as f:
        f.write(b'{"seq": 13, "time": 2000.0, "ki')  # the power cut came mid-write
    again = AuditLog(tmp_path, capacity=5)
    assert [e.seq for e in again.between(None, None)] == [8, 9, 10, 11, 12] and again.next_seq == 13
    assert [e.seq for e in again.between(1008.0, 1010.0)] == [9, 10, 11]
    cleared = again.clear(3000.0, "admin1")
    assert [e.kind for e in AuditLog(tmp_path, capacity=5).between(None, None)] == ["log_cleared"]
    assert cleared.user == "admin1"
    assert len(AuditLog(tmp_path / "ram", capacity=5, volatile=True)) == 0 and not (tmp_path / "ram").exists()


def test_lockout_after_repeated_failures(sim):
    assert PROFILE.lockout is not None
    name, password = USERS["viewer"]

    async def body():
        t0 = device_now(sim, -1)
        for _ in range(PROFILE.lockout.after_failures):
            assert await refused(connect(sim, user=(name, "wrong"))) == "BadUserAccessDenied"
        assert await refused(connect(sim, user=(name, password))) == "BadUserAccessDenied"  # locked
        sim.control(op="advance", seconds=PROFILE.lockout.duration_s + 1)
        async with Session(sim, "viewer") as s:  # the lock ran out
            entries = await s.history(t0)
        kinds = [(e.Category, e.ClientUserId, e.Status) for e in entries]
        assert kinds.count(("login_failed", name, False)) == PROFILE.lockout.after_failures + 1
        assert ("security", name, True) in kinds and kinds[-1] == ("login", name, True)  # start only: oldest first
    run(body)


# ---- roles on writes and calls, the audit log ---------------------------------------------------------
def test_roles_on_writes_and_calls_and_what_the_log_says(sim):
    assert PROFILE.audit is not None and PROFILE.audit.clear is not None
    clear = PROFILE.audit.clear

    async def body():
        t0 = device_now(sim, -1)
        async with Session(sim, "viewer") as s:
            before = await s.read("supply_setpoint")
            assert await refused(s.write("supply_setpoint", before + 5)) == "BadUserAccessDenied"
            assert await s.read("supply_setpoint") == before
            assert await refused(s.call(PROFILE.methods["stop_pump"].object.text,
                                        PROFILE.methods["stop_pump"].method.text)) == "BadUserAccessDenied"
        async with Session(sim, "operator") as s:
            await s.write("supply_setpoint", before + 5)
            assert await s.read("supply_setpoint") == before + 5
            assert await refused(s.write("supply_setpoint", 500.0)) == "BadOutOfRange"
            assert await refused(s.write("ramp_rate", 3.0)) == "BadUserAccessDenied"  # a parameter
            assert await refused(s.write("supply_temperature", 1.0)) == "BadNotWritable"
            assert await refused(s.call(clear.object.text, clear.method.text)) == "BadUserAccessDenied"
            await s.call(PROFILE.methods["start_pump"].object.text, PROFILE.methods["start_pump"].method.text)
        async with Session(sim, "administrator") as s:
            target = device_now(sim, 2 * 3600)
            await s.client.get_node(s.nid(PROFILE.points["clock"].node.text)).write_value(
                ua.Variant(target, ua.VariantType.DateTime))
            assert abs((await s.read("clock") - target).total_seconds()) < 2
            await s.client.get_node(s.nid(PROFILE.points["clock"].node.text)).write_value(
                ua.Variant(device_now(sim, -2 * 3600), ua.VariantType.DateTime))
            entries = await s.history(t0, device_now(sim, 3 * 3600))
        by = {(e.Category, e.ClientUserId, e.SourceName, e.Status): e for e in entries}
        change = by[("settings", "oper1", "supply_setpoint", True)]
        assert (change.OldValue, change.NewValue) == (before, before + 5)
        assert ("settings", "oper1", "supply_setpoint", False) in by  # the out-of-range attempt
        assert ("security", "view1", "supply_setpoint", False) in by
        assert ("security", "view1", "stop_pump", False) in by
        assert ("security", "oper1", "AuditLog.Clear", False) in by
        assert ("control", "oper1", "start_pump", True) in by
        assert ("settings", "admin1", "clock", True) in by
        assert [e.Time for e in entries] == sorted(e.Time for e in entries)  # start < end: oldest first
    run(body)


def test_audit_events_arrive_live_and_history_filters_by_time(sim):
    assert PROFILE.audit is not None

    class Collect:
        def __init__(self) -> None:
            self.events: list[Any] = []

        def event_notification(self, event: Any) -> None:
            self.events.append(event)

    async def body():
        handler = Collect()
        async with Session(sim, "administrator") as s:
            sub = await s.client.create_subscription(20, handler)
            await sub.subscribe_events(s.client.get_node(s.nid(PROFILE.audit.source.text)),
                                       s.client.get_node(s.nid(PROFILE.audit.event_type.text)))
            sim.control(op="alarm", name="leak", message="leak detected in the return pipe")
            deadline = time.monotonic() + 5
            while not any(getattr(e, "Category", None) == "alarm" for e in handler.events):
                assert time.monotonic() < deadline, "no live audit event"
                await asyncio.sleep(0.02)
            alarm = next(e for e in handler.events if e.Category == "alarm")
            assert alarm.SourceName == "leak" and alarm.ClientUserId == "system"
            t_alarm = alarm.Time
            window = await s.history(t_alarm - timedelta(milliseconds=1), t_alarm + timedelta(milliseconds=1))
            assert [e.Category for e in window] == ["alarm"]
            assert all(e.Time <= t_alarm for e in await s.history(None, t_alarm))  # open start: newest first
    run(body)


# ---- software update -----------------------------------------------------------------------------------
def test_update_confirm_then_rollback_keeps_configuration(sim):
    async def body():
        async with Session(sim, "administrator") as s:
            assert await s.read("firmware_version") == "2.1.0"
            await s.transfer(kit(sim, "next"))
            assert await s.update_state() == "Transferred"
            assert await s.client.get_node(s.nid(PROFILE.update.available_version.text)).read_value() == "2.2.0"
            await s.update("install")
            assert await s.wait_state("Installing", "Installed") == "Installing"
            await s.wait_state("Installed")
            await s.update("activate")
            assert await s.read("firmware_version") == "2.2.0" and await s.update_state() == "Confirming"
            assert await s.client.get_node(s.nid(PROFILE.update.previous_version.text)).read_value() == "2.1.0"
            await s.update("confirm")
            assert await s.update_state() == "Idle"
            await s.write("supply_setpoint", 66.5)
            await s.update("rollback")
            assert await s.read("firmware_version") == "2.1.0" and await s.update_state() == "RolledBack"
            assert await s.read("supply_setpoint") == 66.5
            assert await s.client.get_node(s.nid(PROFILE.update.available_version.text)).read_value() == ""
        async with Session(sim, "operator") as s:
            assert await refused(s.update("rollback")) == "BadUserAccessDenied"
    run(body)


def test_forged_and_unsuitable_images_are_refused(sim):
    async def body():
        t0 = device_now(sim, -1)
        good = kit(sim, "next")
        cases = {"unsigned": unsigned(good), "wrongly signed": wrongly_signed(good),
                 "truncated": truncated(good), "corrupted": corrupted(good), "below min": kit(sim, "below_min")}
        expected = {"unsigned": "BadSecurityChecksFailed", "wrongly signed": "BadSecurityChecksFailed",
                    "truncated": "BadDecodingError", "corrupted": "BadSecurityChecksFailed",
                    "below min": "BadRequestNotAllowed"}
        got = {}
        async with Session(sim, "administrator") as s:
            for name, image in cases.items():
                await s.transfer(image)
                got[name] = await refused(s.update("install"))
                assert await s.update_state() == "Failed"
            assert await s.read("firmware_version") == "2.1.0"
            assert await refused(s.update("activate")) == "BadInvalidState"
            entries = await s.history(t0)
        assert got == expected
        rejected = [e for e in entries if e.Category == "security" and "rejected" in e.Message.Text]
        assert len(rejected) == len(cases) and all(e.ClientUserId == "admin1" for e in rejected)
    run(body)


def test_unhealthy_or_unconfirmed_activation_rolls_back_by_itself(sim):
    assert PROFILE.update is not None

    async def body():
        async with Session(sim, "administrator") as s:
            for name, state in (("unhealthy", "Activating"), ("next", "Confirming")):
                await s.transfer(kit(sim, name))
                await s.update("install")
                await s.wait_state("Installed")
                await s.update("activate")
                assert await s.update_state() == state and await s.read("firmware_version") != "2.1.0"
                if name == "unhealthy":
                    assert await refused(s.update("confirm")) == "BadInvalidState"
                sim.control(op="advance", seconds=PROFILE.update.health_check_s)
                await s.wait_state("RolledBack", timeout_s=2)
                assert await s.read("firmware_version") == "2.1.0"
    run(body)


# ---- power cuts (the golden simulator, killed and restarted) ----------------------------------------------
def test_power_cut_during_install_and_during_trial_boots_a_valid_version(sim):
    async def body():
        t0 = device_now(sim, -1)
        async with Session(sim, "administrator") as s:
            await s.write("pressure_setpoint", 1.25)
            await s.transfer(kit(sim, "next"))
            await s.update("install")
            await s.wait_state("Installing")
        sim.kill()  # mid-install: the new slot is half written
        sim.start()
        async with Session(sim, "administrator") as s:
            assert await s.read("firmware_version") == "2.1.0" and await s.update_state() == "Idle"
            assert await s.read("pressure_setpoint") == 1.25
            messages = [e.Message.Text for e in await s.history(t0)]
            assert any("interrupted by a power loss" in m for m in messages)
            assert any("pressure_setpoint changed" in m for m in messages)  # the log survived the cut
            await s.transfer(kit(sim, "next"))
            await s.update("install")
            await s.wait_state("Installed")
            await s.update("activate")
            assert await s.read("firmware_version") == "2.2.0"
        sim.kill()  # on trial, never confirmed
        sim.start()
        async with Session(sim, "administrator") as s:
            assert await s.read("firmware_version") == "2.1.0" and await s.update_state() == "RolledBack"
            assert await s.read("pressure_setpoint") == 1.25
    run(body)


# ---- retention (moves device time a year on: the last test of the golden simulator) ---------------------------
def test_a_year_of_events_is_retained(sim):
    assert PROFILE.audit is not None

    async def body():
        start = datetime.fromtimestamp(sim.control(op="status")["utc"], UTC)
        t0 = time.monotonic()
        reply = sim.control(op="synthesize_events", days=365)
        assert reply["generated"] == 365 * PROFILE.audit.events_per_day <= PROFILE.audit.capacity
        async with Session(sim, "viewer") as s:
            first_day = await s.history(start, start + timedelta(days=1))
            last_day = await s.history(start + timedelta(days=364), start + timedelta(days=365))
        assert len(first_day) >= PROFILE.audit.events_per_day - 1 and len(last_day) >= PROFILE.audit.events_per_day - 1
        assert time.monotonic() - t0 < 10
        sim.control(op="advance", seconds=0)
    run(body)


# ---- seeded defects: each observable over OPC UA ------------------------------------------------------------
def test_defect_none_policy_and_anonymous_and_default_password(bad_sim):
    async def body():
        client = Client(bad_sim.url, timeout=5)
        await client.connect_socket()
        try:
            await client.send_hello()
            await client.open_secure_channel()
            result = await client.uaclient.create_session(ua.CreateSessionParameters(
                ClientDescription=ua.ApplicationDescription(ApplicationUri="urn:attacker",
                                                            ApplicationType=ua.ApplicationType.Client),
                EndpointUrl=bad_sim.url, SessionName="raw", ClientNonce=os.urandom(32),
                RequestedSessionTimeout=60000))
            client._server_nonce, client._policy_ids = result.ServerNonce, []
            await client.activate_session(*USERS["operator"])  # password in clear, accepted
            assert await client.get_node(ua.NodeId(ua.ObjectIds.Server_ServerStatus_State)).read_value() == 0
        finally:
            client.disconnect_socket()
        client = Client(bad_sim.url, timeout=5)
        await client.set_security(SecurityPolicyBasic256Sha256, *map(str, bad_sim.pki.trusted))
        await client.connect()  # anonymous
        await client.disconnect()
        async with Session(bad_sim, user=("admin", "admin")) as s:
            await s.write("ramp_rate", 4.0)  # an administrator's operation
    run(body)


def test_defect_no_lockout(bad_sim):
    assert PROFILE.lockout is not None

    async def body():
        for _ in range(PROFILE.lockout.after_failures + 1):
            assert await refused(connect(bad_sim, user=(USERS["viewer"][0], "wrong"))) == "BadUserAccessDenied"
        async with Session(bad_sim, "viewer"):
            pass
    run(body)


def test_defect_roles_and_log(bad_sim):
    assert PROFILE.audit is not None and PROFILE.audit.clear is not None

    async def body():
        async with Session(bad_sim, "viewer") as s:
            await s.write("supply_setpoint", 72.0)  # role_viewer_can_write
        async with Session(bad_sim, "operator") as s:
            await s.call(PROFILE.audit.clear.object.text, PROFILE.audit.clear.method.text)  # log_clearable_by_operator
            entries = await s.history()
        assert entries and entries[-1].Category == "log_cleared"
        assert {e.ClientUserId for e in entries} == {""}  # log_missing_user
    run(body)


def test_defect_protocol_answers_certificate_trust_and_password(bad_sim):
    start_pump = PROFILE.methods["start_pump"]

    async def body():
        client = Client(bad_sim.url, timeout=5)
        try:
            policies = {e.SecurityPolicyUri.rpartition("#")[2] for e in await client.connect_and_get_server_endpoints()}
        finally:
            client.disconnect_socket()
        assert "Basic128Rsa15" in policies and "Basic128Rsa15" not in PROFILE.policies  # endpoint_extra_policy
        admin = USERS["administrator"][0]
        async with Session(bad_sim, user=(admin, "not-the-password"), cert="untrusted") as s:
            # auth_trusts_any_certificate (an untrusted channel), auth_ignores_password (the most privileged role)
            unknown = s.client.get_node(ua.NodeId("tek-no-such-node", s.ns.index(PROFILE.namespace_uri)))
            assert await refused(unknown.read_value()) == "BadInternalError"  # unknown_node_wrong_status
            assert await refused(unknown.write_value(ua.Variant(1.0, ua.VariantType.Double))) == "BadInternalError"
            await s.write("supply_setpoint", 74.0)
            await s.write("supply_setpoint", "tek-harness", ua.VariantType.String)  # write_wrong_type_accepted:
            assert await s.read("supply_setpoint") == 74.0                          # Good, and dropped
            await s.write("supply_setpoint", "75,5", ua.VariantType.String)  # a number in text is converted
            assert await s.read("supply_setpoint") == 75.5
        async with Session(bad_sim, "viewer") as s:  # access_denied_wrong_status
            assert await refused(s.write("ramp_rate", 4.0)) == "BadNotWritable"
            assert await refused(s.call(start_pump.object.text, start_pump.method.text)) == "BadNotExecutable"
        assert await refused(connect(bad_sim, user=(USERS["viewer"][0], "not-the-password"))) == "BadUserAccessDenied"
    run(body)


def test_defect_update_checks(bad_sim):
    async def body():
        async with Session(bad_sim, "administrator") as s:
            for forged in (unsigned(kit(bad_sim, "next")), corrupted(kit(bad_sim, "next"))):
                await s.transfer(forged)
                await s.update("install")  # accepted: update_accepts_unsigned, update_accepts_corrupted
                await s.wait_state("Installed")
            assert await refused(s.transfer(wrongly_signed(kit(bad_sim, "next")))) == ""
            assert await refused(s.update("install")) == "BadSecurityChecksFailed"  # still checked
            await s.write("supply_setpoint", 81.0)
            await s.transfer(kit(bad_sim, "unhealthy"))
            await s.update("install")
            await s.wait_state("Installed")
            await s.update("activate")
            bad_sim.control(op="advance", seconds=10 * PROFILE.update.health_check_s)
            await asyncio.sleep(0.3)
            assert await s.read("firmware_version") == "2.3.0"  # update_no_auto_rollback
            await s.update("rollback")
            assert await s.read("firmware_version") == "2.1.0"
            assert await s.read("supply_setpoint") != 81.0  # update_rollback_loses_config
    run(body)


def test_defect_power_cut_loses_log_and_bricks_during_install(bad_sim):
    async def body():
        bad_sim.control(op="alarm", name="marker", message="recorded before the power cut")
        async with Session(bad_sim, "administrator") as s:
            assert any(e.SourceName == "marker" for e in await s.history(device_now(bad_sim, -5)))
            await s.transfer(kit(bad_sim, "next"))
            await s.update("install")
            await s.wait_state("Installing")
        bad_sim.kill()
        bad_sim.start()
        async with Session(bad_sim, "administrator") as s:
            assert await s.read("firmware_version") == "0.0.0"  # update_power_loss_bricks
            assert await s.update_state() == "Failed"
            entries = await s.history()
        assert entries and not any(e.SourceName == "marker" for e in entries)  # log_volatile
        assert any("boot slot" in e.Message.Text for e in entries)
    run(body)


def test_profile_is_the_contract_shape():
    """The simulator's profile passes the harness's own schema (harness/config/opcua_map.py)."""
    res = run_cli("check", str(builtin_profile("tek-sim-pc1.yaml")))
    assert res.returncode == 0, res.stderr
    assert isinstance(PROFILE, ControllerProfile)


# ---- every check the controller rig runs has its seeded defect -------------------------------------------
# Checks that run on a controller but are proven elsewhere, each with the reason:
NO_CONTROLLER_DEFECT = {
    # documentary (suite `documentation`): judged from the vendor's declarations, not from the device
    **dict.fromkeys(("KZ-50-01", "KZ-58-01", "KZ-59-01", "KZ-72-01", "KZ-79-01", "KZ-87-01", "KZ-93-01"),
                    "documentary"),
    # availability (cl. 67, 73): the soak polls through the Device API whatever the protocol; its defect is the
    # meter's intermittent_unavailable (AVAILABILITY_DEFECTS)
    "KZ-67-01": "availability", "KZ-73-01": "availability",
    # Modbus wire checks of suite `protocol`: N/A on an OPC UA DUT (their defects are the meter's WIRE_DEFECTS)
    **{f"KZ-68-{n:02d}": "modbus only" for n in range(1, 8)},
}


def _checks_for(kind: str) -> set[str]:
    """Check ids of the built-in suites that apply to ``kind``: from their ``check`` markers, kept when neither
    the module's nor the test's ``dut_kind`` marker excludes the kind (read from the source, not collected)."""
    def kinds(nodes: list[ast.expr]) -> set[str]:
        return {a.value for n in nodes for c in ast.walk(n) if isinstance(c, ast.Call)
                and getattr(c.func, "attr", None) == "dut_kind" for a in c.args if isinstance(a, ast.Constant)}

    found = set()
    for path in Path(harness.conformance.__file__).parent.rglob("test_*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        module = kinds([n.value for n in tree.body if isinstance(n, ast.Assign)
                        and any(getattr(t, "id", None) == "pytestmark" for t in n.targets)])
        for fn in (n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)):
            marks = [d for d in fn.decorator_list
                     if isinstance(d, ast.Call) and getattr(d.func, "attr", None) == "check"]
            applies = module | kinds(fn.decorator_list)
            if marks and (not applies or kind in applies):
                found.add(marks[0].args[0].value)  # type: ignore[attr-defined]
    return found


def test_every_controller_check_has_a_seeded_defect():
    checks = _checks_for("controller")
    assert {"KZ-69-04", "KZ-70-01", "KZ-49-01", "KZ-49-04", "KZ-68-08"} <= checks and "KZ-95-01" not in checks
    assert set(NO_CONTROLLER_DEFECT) <= checks, "an exemption names a check that no longer runs on a controller"
    missing = checks - set(NO_CONTROLLER_DEFECT) - {d.expect for d in CONTROLLER_DEFECTS.values()}
    assert not missing, f"checks that run on the controller rig without a seeded defect: {sorted(missing)}"


# ---- seeded defects of the checks that had none (KZ-69-04, KZ-70-01/07/08, KZ-49-01) -----------------------
def test_defect_downgrade_indication_and_update_log(bad_sim):
    assert PROFILE.update is not None and PROFILE.update.available_version is not None

    async def body():
        since = device_now(bad_sim, -1)
        async with Session(bad_sim, "administrator") as s:
            await s.transfer(kit(bad_sim, "below_min"))
            await s.update("install")  # update_accepts_downgrade: 1.9.0 is below min_version 2.0.0
            assert await s.wait_state("Installed", "Failed") == "Installed"
            await s.transfer(kit(bad_sim, "next"))
            available = s.client.get_node(s.nid(PROFILE.update.available_version.text))
            assert await available.read_value() == ""  # update_no_indication
            entries = await s.history(since)
        # update_not_logged: of the firmware entries only the device's own announcements are left (1.9.0 too when an
        # earlier test left the simulator bricked, running 0.0.0)
        logged = [e.Message.Text for e in entries if e.Category == "firmware"]
        assert logged[-1:] == ["new version available: 2.2.0"] and all("available" in m for m in logged), logged
    run(body)


def test_defect_log_keeps_a_quarter_of_its_capacity(bad_sim):
    audit = PROFILE.audit
    assert audit is not None and audit.clear is not None
    days = 2 * (audit.capacity // SHORT_CAPACITY_DIVISOR) // audit.events_per_day  # twice what the log keeps

    async def body():
        start = device_now(bad_sim)
        assert bad_sim.control(op="synthesize_events", days=days)["generated"] == days * audit.events_per_day
        async with Session(bad_sim, "administrator") as s:
            try:
                assert await s.history(start, start + timedelta(days=1)) == []  # log_capacity_short: gone early
                last_day = await s.history(start + timedelta(days=days - 1), start + timedelta(days=days))
                assert len(last_day) >= audit.events_per_day - 1
            finally:  # a whole-log read of what is left would take seconds
                await s.call(audit.clear.object.text, audit.clear.method.text)
    run(body)


def _exchange(port: int, frame: bytes) -> bytes:
    """Send one UA-TCP message on a new connection; the reply ('' when the peer closes or stays silent)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(frame)
        try:
            return conn.recv(4096)
        except (TimeoutError, ConnectionResetError):
            return b""


def test_defect_crash_on_malformed_hello(sim, bad_sim):
    """The last test of the defective simulator: it dies, and is started again for whoever comes next."""
    sound = hello(bad_sim.url)
    lying = sound[:28] + struct.pack("<i", -2) + sound[32:]  # EndpointUrl length -2: 4 GiB - 2 read as UInt32
    _exchange(sim.port, lying)
    assert _exchange(sim.port, hello(sim.url))[:3] == b"ACK" and sim.proc.poll() is None  # the golden lives on
    try:
        assert _exchange(bad_sim.port, sound)[:3] == b"ACK"  # a sound Hello is answered
        _exchange(bad_sim.port, lying)
        assert bad_sim.proc.wait(timeout=10) == CRASH_EXIT  # crash_on_malformed_hello
    finally:
        bad_sim.kill()
        bad_sim.start()
