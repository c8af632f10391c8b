"""The `opcua:` profile schema and the rig's security additions: a valid profile loads, every mistake is
reported as file:line: field: message, and `harness --help` stays free of asyncua."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from harness.config import ConfigError, load_profile, load_rig
from harness.config.opcua_map import Operation, PointKind, SecurityPolicy
from harness.devices.opcua_pki import PkiError, ensure_pki
from tests.conftest import run_cli

PROFILE = Path(__file__).resolve().parent / "data" / "opcua-stock.yaml"
TEXT = PROFILE.read_text(encoding="utf-8")


def _write(tmp_path: Path, text: str, name: str = "p.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _line_of(text: str, fragment: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if line.startswith(fragment))


def test_a_valid_opcua_profile_loads():
    p = load_profile(PROFILE)
    assert p.protocol == "opcua" and p.declares("heat_power") and not p.declares("active_import_total")
    m = p.opcua
    assert m.points["supply_setpoint"].writable and not m.points["flow_temperature"].writable
    assert m.points["supply_setpoint"].kind.write_operation == Operation.WRITE_SETPOINT
    assert m.points["clock"].kind == PointKind.CLOCK and m.points["clock"].writable
    assert m.points["heat_power"].factor == 1000 and m.points["heat_power"].canonical_unit == "W"
    assert m.points["ramp_rate"].canonical_unit == "K/min"  # a process unit, passed through
    assert m.roles_allowing(Operation.WRITE_SETPOINT) == ["operator", "administrator"]  # least privileged first
    assert m.audit_log.kind_of("ctl").value == "control_action" and m.audit_log.kind_of("other") is None
    assert m.update.chunk_bytes == 1024 and m.update.below_min_version == "refuse"


def test_every_policy_name_is_one_asyncua_implements():
    from asyncua.crypto import security_policies

    uris = {getattr(c, "URI", None) for c in vars(security_policies).values() if isinstance(c, type)}
    assert {p.uri for p in SecurityPolicy} <= uris


@pytest.mark.parametrize(("old", "new", "field", "message", "line_at"), [
    ("    operator: [read, write_setpoint, control]", "    operator: [read, write_setpoint, reboot]",
     "opcua.roles.operator.2", "'write_parameter'", "    operator:"),
    ("policies: [Basic256Sha256,", "policies: [Basic256Sha512,", "opcua.security.policies.0", "Aes128_Sha256_RsaOaep",
     "    policies:"),
    ("kind: process_value, unit: degC}", "kind: process_value, unit: degC, range: [0, 1]}",
     "opcua.points.flow_temperature", "range applies to setpoints and parameters", "    flow_temperature:"),
    ('{node: "nsu=urn:test:stock-ctrl;s=Plant.HeatPower"', '{node: "Plant.HeatPower"', "opcua.points.heat_power.node",
     "is not a node", "    heat_power:"),
    ("running_version: firmware_version", "running_version: firmware", "opcua.update", "does not declare",
     "  update:"),
    ("kinds: {control_action: ctl, settings_change: set}", "kinds: {control_action: ctl, settings_change: ctl}",
     "opcua.audit_log", "mapped to two kinds", "  audit_log:"),
    ("kinds: {control_action: ctl,", "kinds: {control_act: ctl,", "opcua.audit_log.kinds.control_act.[key]",
     "login_success", "    kinds:"),
    ("modes: [Sign, SignAndEncrypt]", "modes: [Sign, None]", "opcua.security", "go together", "  security:"),
    ("kind: setpoint, unit: degC, range: [20, 120]", "kind: setpoint, unit: degF, range: [20, 120]",
     "opcua.points.supply_setpoint", "unit 'degF' unknown", "    supply_setpoint:"),
    # 12.14: honest declarations of what a device lacks, and which role anonymous / certificate users get
    ("    identities: [username, certificate]", "    identities: [username, certificate]\n    anonymous_role: viewer",
     "opcua.security", "needs identity anonymous", "  security:"),
    ("    identities: [username, certificate]", "    identities: [username, certificate]\n    certificate_role: root",
     "opcua", "names role 'root'", "opcua:"),
    ("    capacity: 1000", "    capacity: 1000\n  absent: [audit_log]", "opcua", "absent lists audit_log", "opcua:"),
    ("    capacity: 1000", "    capacity: 1000\n  absent: [firewall]", "opcua.absent.0", "lockout", "  absent:"),
])
def test_mistakes_are_reported_with_file_line_and_field(tmp_path, old, new, field, message, line_at):
    assert old in TEXT
    text = TEXT.replace(old, new, 1)
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_profile(path)
    problem = next(p for p in err.value.problems if p.field == field)
    assert message in problem.message
    assert (problem.path, problem.line) == (path, _line_of(text, line_at))


def test_protocol_sections_clock_and_the_cli(tmp_path):
    no_clock = _write(tmp_path, TEXT.replace('clock: {utc_offset: "+06:00", writable: true}\n', ""), "a.yaml")
    with pytest.raises(ConfigError, match="needs a `clock:` section"):
        load_profile(no_clock)
    both = _write(tmp_path, TEXT + "modbus:\n  points:\n    serial_number: {address: 0, type: string, length: 4}\n",
                  "b.yaml")
    with pytest.raises(ConfigError, match="exactly one protocol section"):
        load_profile(both)
    bad = _write(tmp_path, TEXT.replace("    viewer: [read]", "    viewer: [read, fly]"), "c.yaml")
    res = run_cli("check", str(bad), str(PROFILE))
    assert res.returncode == 2
    line = _line_of(TEXT, "    viewer: [read]")
    assert f"{bad}:{line}: opcua.roles.viewer.1: Input should be" in res.stderr + res.stdout


def test_rig_credentials_firmware_and_client_certificate(tmp_path):
    rig = _write(tmp_path, f"""
name: r
duts:
  plc:
    profile: {PROFILE}
    transport: {{tcp: {{host: 127.0.0.1, port: 4840}}}}
    credentials:
      operator: {{user: oper1, password: "x"}}
      engineer: {{certificate: certs/eng.der, key: certs/eng.pem}}
    firmware: {{current: "{{state_dir}}/vendor/a.img", next: images/b.img}}
    client_certificate: certs/client.der
    client_key: certs/client.pem
""", "rig.yaml")
    dut = load_rig(rig).rig.duts["plc"]
    assert dut.credentials["operator"].user == "oper1"
    assert dut.credentials["engineer"].certificate == str(tmp_path / "certs" / "eng.der")
    assert dut.client_certificate == str(tmp_path / "certs" / "client.der")
    assert dut.firmware.path("current", "/st") == Path("/st/vendor/a.img")
    assert dut.firmware.path("next") == tmp_path / "images" / "b.img" and dut.firmware.path("unhealthy") is None
    text = rig.read_text()
    account = 'operator: {user: oper1, password: "x"}'
    for bad, message in [(text.replace(account, "operator: {user: oper1}"), "both `user` and `password`"),
                         (text.replace(account, "operator: {user: o, password: x, key: k.pem}"), "either"),
                         (text.replace("next: images/b.img}", 'next: "{port}/b.img"}'), "unknown placeholder")]:
        with pytest.raises(ConfigError, match=message):
            load_rig(_write(tmp_path, bad, "bad.yaml"))


def test_pki_is_made_once_and_a_rig_certificate_is_adopted(tmp_path):
    pki = ensure_pki(tmp_path / "pki")
    stamp = pki.trusted.der.stat().st_mtime_ns
    assert ensure_pki(tmp_path / "pki").trusted.der.stat().st_mtime_ns == stamp
    assert pki.trusted.application_uri != pki.untrusted.application_uri
    assert pki.trusted.der.read_bytes() != pki.untrusted.der.read_bytes()
    adopted = ensure_pki(tmp_path / "pki2", pki.trusted.pem, pki.trusted.key)  # a lab's own, given as PEM
    assert adopted.trusted.der.read_bytes() == pki.trusted.der.read_bytes()
    assert adopted.trusted.application_uri == pki.trusted.application_uri and adopted.trusted.key == pki.trusted.key
    with pytest.raises(PkiError, match="give both"):
        ensure_pki(tmp_path / "pki3", pki.trusted.der, None)
    assert oct(pki.trusted.key.stat().st_mode & 0o777) == "0o600"


def test_harness_help_does_not_import_asyncua():
    res = subprocess.run([sys.executable, "-X", "importtime", "-m", "harness", "--help"], capture_output=True,
                         text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert res.returncode == 0 and "asyncua" not in res.stderr
