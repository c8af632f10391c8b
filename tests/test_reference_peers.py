"""The protocol suite against Modbus stacks nobody on this project wrote — stock libmodbus 3.1.6 (modbus_reply,
one contiguous block per table) and plain pymodbus 3.16 (ModbusTcpServer over its simple datastore) — each
already running, on a rig that forbids destructive suites, as a lab would meet them.

The expected verdicts are written down from the Modbus Application Protocol Specification V1.1b3 and the
Modbus Messaging on TCP/IP Implementation Guide V1.0b, not from what the harness happens to say: where a stack
departs from the specification the expected verdict is FAIL on that check, with the reasoning beside it. Every
run also proves the suite touched nothing: each table of the peer is read whole before and after (including
an undeclared register holding 247, a bus address say) and must be the same.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.conftest import checks_of, run_cli
from tests.reference_peers import (
    DATA,
    compile_libmodbus_server,
    peer_rig,
    pymodbus_command,
    read_tables,
    start_peer,
)

MODBUS_CHECKS = [f"KZ-68-{n:02d}" for n in range(1, 8)]
LIBMODBUS_BLOCKS = [(1, 0, 16), (2, 0, 16), (3, 0, 32), (4, 0, 16)]
PYMODBUS_BLOCKS = [(1, 0, 16), (2, 0, 16), (3, 0, 16), (3, 100, 4), (4, 0, 8)]
VENDOR_SETTING = 247  # holding register 2 of both peers: declared by no profile, reserved by theirs

# libmodbus 3.1.6, with a profile that reserves the rest of each block and declares where each ends.
EXPECTED_LIBMODBUS = {
    # FC1-6, 15, 16 answered as the spec's PDUs say; 22 and 23 write a point's own value back; 17 answers.
    "KZ-68-01": "PASS",
    # Spec 7 (exception 01): a function code the server does not support is answered with exception 01. libmodbus
    # has FC07 in its switch but sends nothing ("not implemented") — no answer is not an exception: FAIL.
    "KZ-68-02": "FAIL",
    # Reads at the first address past each declared block and writes there (declared absent, so sent on this
    # non-destructive rig) are answered 02, as spec 6.1-6.12 ask: PASS — the reserved ranges keep the suite off
    # registers that exist and answer with data.
    "KZ-68-03": "PASS",
    # Spec 6.5 (FC05 state diagram) checks the output value (0x0000 / 0xFF00, else 03) before the address, and
    # 6.11 (FC15) quantity and byte count = N (else 03) before the address — every state diagram of the spec
    # runs 01 (function), 03 (value), 02 (address), 04 (execution) in that order. libmodbus checks the address first
    # (02 for both) and never compares the FC15 byte count with the quantity: FAIL. Reads of quantity 0 / max+1
    # and the FC16 probes are answered 03 (after libmodbus's 0.5 s pause).
    "KZ-68-04": "FAIL",
    # Messaging guide, MBAP header description (3.1.3): protocol id 0 is Modbus and the length field counts the
    # bytes that follow; the server checks the MBAP header before it processes the PDU (server design, 4.4).
    # libmodbus frames by the function code and ignores both: a frame with protocol id 1 and frames whose length
    # field is 1 short or 2 long are answered as valid — FAIL.
    "KZ-68-05": "FAIL",
    # No unit-id filter on TCP; the profile declares unit_id_policy any: PASS.
    "KZ-68-06": "PASS",
    "KZ-68-07": "N/A",  # TCP: no CRC
}

# pymodbus 3.16, with a profile that declares what it serves (a sparse holding table with a real hole).
EXPECTED_PYMODBUS = {
    # Every declared code answers: reads, own-value write-backs (FC5/6/15/16/22/23), FC7/8/11/12/17/20/24/43.
    "KZ-68-01": "PASS",
    # Spec 7: an exception reply carries the request's function code + 0x80. pymodbus answers FC21 and the
    # unassigned 9 and 65 with 0x80 01 — function code 0x80 — which is no valid exception to them: FAIL.
    "KZ-68-02": "FAIL",
    # The hole 16..99 of the sparse holding table, and the addresses past each block, answer 02: PASS.
    "KZ-68-03": "PASS",
    # Spec 6.1-6.4: a read quantity of 0 or above the maximum is answered with exception 03 (function code +
    # 0x80); pymodbus answers 0x80 01 (so too FC15 with quantity 0). FC05 with value 0x1234 past the coils gets
    # 02 where the FC05 state diagram checks the value first (03) — at a coil that exists pymodbus takes 0x1234
    # as ON, which is why that probe only goes past the declared space on this rig: FAIL. The FC15 / FC16
    # byte-count lies are answered 03, as due.
    "KZ-68-04": "FAIL",
    # Protocol id 1 and a length field 2 long go unanswered; 1 short is answered 0x80 01 — none a valid answer:
    # PASS.
    "KZ-68-05": "PASS",
    "KZ-68-06": "PASS",  # a single=True context answers every unit id; declared any
    "KZ-68-07": "N/A",
}


@pytest.fixture(scope="module")
def libmodbus_server(tmp_path_factory) -> Path:
    binary, why = compile_libmodbus_server(tmp_path_factory.mktemp("libmodbus"))
    if binary is None:
        pytest.skip(f"the libmodbus reference peer cannot be built here: {why}")
    return binary


def _protocol_run(tmp_path: Path, profile: Path, port: int, *args: str,
                  allow_destructive: bool = False) -> dict[str, dict]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    out = tmp_path / "out"
    rig = peer_rig(tmp_path / "rig.yaml", profile, port, allow_destructive=allow_destructive)
    res = run_cli("certify", str(rig), *(args or ("--suite", "protocol")), "--out", str(out), "--reruns", "0",
                  timeout=240)
    assert "Traceback" not in res.stderr, res.stderr
    return checks_of(out)


def _failed(record: dict) -> dict[str, str]:
    return {m["name"]: m["measured"] for m in record["measurements"] if not m["passed"]}


@pytest.mark.slow
def test_libmodbus_peer_verdicts_and_nothing_changed(tmp_path, libmodbus_server):
    peer = start_peer([str(libmodbus_server)])
    try:
        before = read_tables(peer.port, LIBMODBUS_BLOCKS)
        assert before[3, 0][2] == VENDOR_SETTING
        checks = _protocol_run(tmp_path, DATA / "libmodbus-peer.yaml", peer.port)
        after = read_tables(peer.port, LIBMODBUS_BLOCKS)
    finally:
        peer.stop()
    assert after == before  # not one coil or register of a running device changed
    assert {c: checks[c]["verdict"] for c in MODBUS_CHECKS} == EXPECTED_LIBMODBUS
    assert _failed(checks["KZ-68-02"]) == {"FC07 (not declared)": "no answer"}
    assert set(_failed(checks["KZ-68-04"])) == {"FC05 at 16: value 0x1234 (neither ON nor OFF)",
                                                "FC15 at 16: byte count 2 for 1 coil"}
    assert sorted(name.split(":")[0] for name in _failed(checks["KZ-68-05"])) == [
        "length field 1 short of the PDU", "length field 2 beyond the bytes sent", "protocol id 1"]
    written = {m["name"] for m in checks["KZ-68-01"]["measurements"] if " write of " in m["name"]}
    assert {name.split()[0] for name in written} == {"FC05", "FC06", "FC15", "FC16", "FC22", "FC23"}
    assert any(name.startswith("FC16 write of x_unix_time (2 at 10)") for name in written)  # a u32 block


def test_pymodbus_peer_verdicts_and_nothing_changed(tmp_path):
    peer = start_peer(pymodbus_command())
    try:
        before = read_tables(peer.port, PYMODBUS_BLOCKS)
        assert before[3, 0][2] == VENDOR_SETTING
        checks = _protocol_run(tmp_path, DATA / "pymodbus-peer.yaml", peer.port)
        after = read_tables(peer.port, PYMODBUS_BLOCKS)
    finally:
        peer.stop()
    assert after == before
    assert {c: checks[c]["verdict"] for c in MODBUS_CHECKS} == EXPECTED_PYMODBUS
    assert set(_failed(checks["KZ-68-02"]).values()) == {"exception 01 (function code 0x80)"}
    assert set(_failed(checks["KZ-68-02"])) == {"FC21 (not declared)", "FC09 (not declared)", "FC65 (not declared)"}
    failed_04 = _failed(checks["KZ-68-04"])
    reads = {f"FC0{fc} quantity {q} at {a}" for fc, a, big in ((1, 3, 2001), (2, 0, 2001), (3, 0, 126), (4, 0, 126))
             for q in (0, big)}
    assert failed_04 == {**{name: "exception 01 (function code 0x80)" for name in reads},
                         "FC15 at 16: quantity 0": "exception 01 (function code 0x80)",
                         "FC05 at 16: value 0x1234 (neither ON nor OFF)": "exception 02 (function code 0x85)"}
    picks = {m["name"]: m["note"] for m in checks["KZ-68-03"]["measurements"]}
    assert "no declared point and no reserved range" in picks["FC03 read at unmapped holding 16"]


def _without_space(tmp_path: Path) -> Path:
    """The libmodbus peer's profile as a lab would write it without reserved ranges or address space."""
    data = yaml.safe_load((DATA / "libmodbus-peer.yaml").read_text(encoding="utf-8"))
    del data["modbus"]["reserved"], data["modbus"]["address_space"]
    path = tmp_path / "libmodbus-naive.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def test_reserved_ranges_decide_kz_68_03_and_undeclared_writes_are_destructive(tmp_path, libmodbus_server):
    """Without reserved ranges, an undeclared register of a contiguous block answers with data: KZ-68-03 FAILs
    on the read there, and the writes to it are held back on a non-destructive rig (the peer's register 2 keeps
    247). On a rig that allows destructive suites the same write is sent — and libmodbus stores it, which is
    exactly why it is destructive."""
    naive = _without_space(tmp_path)
    peer = start_peer([str(libmodbus_server)])
    try:
        gentle = _protocol_run(tmp_path / "gentle", naive, peer.port, "--check", "KZ-68-03")["KZ-68-03"]
        kept = read_tables(peer.port, [(3, 0, 32)])[3, 0][2]
        rough = _protocol_run(tmp_path / "rough", naive, peer.port, "--check", "KZ-68-03",
                              allow_destructive=True)["KZ-68-03"]
        overwritten = read_tables(peer.port, [(3, 0, 32)])[3, 0][2]
    finally:
        peer.stop()
    assert gentle["verdict"] == "FAIL"
    assert _failed(gentle) == {"FC03 read at unmapped holding 2": "answer, function code 0x03, 4 PDU bytes",
                               "FC04 read at unmapped input 1": "answer, function code 0x04, 4 PDU bytes",
                               "FC01 read at unmapped coil 0": "answer, function code 0x01, 3 PDU bytes",
                               "FC02 read at unmapped discrete_input 1": "answer, function code 0x02, 3 PDU bytes"}
    held = {m["name"]: m["note"] for m in gentle["measurements"] if m["measured"] == "not sent"}
    assert set(held) == {"FC05 write at unmapped coil 0", "FC06 write at unmapped holding 2",
                         "FC15 write at unmapped coil 0", "FC16 write at unmapped holding 2"}
    assert all("allow_destructive: true" in note for note in held.values())
    assert kept == VENDOR_SETTING
    assert rough["verdict"] == "FAIL" and "FC06 write at unmapped holding 2" in _failed(rough)
    assert overwritten == 0


def test_the_driver_reads_and_writes_coils_and_discrete_inputs(tmp_path):
    """The Device API on a coil and a discrete input (FC1, FC2, FC5) of the pymodbus peer, next to registers."""
    from harness.config import load_rig
    from harness.devices.modbus import ModbusDevice

    peer = start_peer(pymodbus_command())
    try:
        loaded = load_rig(peer_rig(tmp_path / "rig.yaml", DATA / "pymodbus-peer.yaml", peer.port))
        device = ModbusDevice("peer", loaded.profiles["peer"], loaded.dut("peer"), loaded.rig.timing, None,
                              {"host": "127.0.0.1", "port": peer.port})
        try:
            values = {q: r.value for q, r in device.read_many(["x_relay", "x_alarm", "x_unix_time"]).items()}
            assert values == {"x_relay": 1, "x_alarm": 1, "x_unix_time": 0x6553F100}
            device.write("x_relay", 0)
            assert device.read("x_relay").value == 0
            device.write("x_relay", 1)
        finally:
            device.close()
        assert read_tables(peer.port, [(1, 0, 16)])[1, 0] == [a % 2 for a in range(8)] + [0] * 8
    finally:
        peer.stop()


def test_a_coil_the_device_does_not_have_fails_kz_68_01(tmp_path, libmodbus_server):
    """KZ-68-01 judges the coil read: a profile whose coil lies past libmodbus's block of 16 gets exception 02
    where the spec's FC01 answer is due."""
    data = yaml.safe_load((DATA / "libmodbus-peer.yaml").read_text(encoding="utf-8"))
    data["modbus"]["points"]["x_relay"]["address"] = 20
    for key in ("reserved", "address_space"):
        del data["modbus"][key]["coil"]
    profile = tmp_path / "libmodbus-coil-20.yaml"
    profile.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    peer = start_peer([str(libmodbus_server)])
    try:
        record = _protocol_run(tmp_path, profile, peer.port, "--check", "KZ-68-01")["KZ-68-01"]
    finally:
        peer.stop()
    assert record["verdict"] == "FAIL"
    assert _failed(record)["FC01 read of x_relay (1 coil at 20)"] == "exception 02 (function code 0x81)"
