"""The driver's Modbus/TCP client against a scripted peer on a real loopback socket: a reply is taken only if
it answers this request, every wait is bounded, and a reply may arrive in pieces."""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from pymodbus.exceptions import ConnectionException, ModbusIOException

from harness.devices.tcp_client import TcpClient

Answer = Callable[[int, int, bytes], list[bytes] | None]  # (tid, unit, request pdu) -> pieces to send, None: close


@pytest.fixture
def peer() -> Iterator[Callable[[Answer], TcpClient]]:
    """A one-connection Modbus/TCP peer that answers each request as the test scripts it."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(5)
    threads: list[threading.Thread] = []

    def serve(answer: Answer) -> None:
        conn, _ = listener.accept()
        conn.settimeout(5)
        with conn:
            while head := conn.recv(7):
                tid, _, length, unit = struct.unpack(">HHHB", head)
                pdu = conn.recv(length - 1)
                pieces = answer(tid, unit, pdu)
                if pieces is None:
                    return
                for piece in pieces:
                    conn.sendall(piece)
                    time.sleep(0.05)

    def start(answer: Answer) -> TcpClient:
        thread = threading.Thread(target=serve, args=(answer,), daemon=True)
        thread.start()
        threads.append(thread)
        client = TcpClient("127.0.0.1", listener.getsockname()[1], 0.5)
        assert client.connect()
        return client

    yield start
    listener.close()
    for thread in threads:
        thread.join(5)


def adu(tid: int, unit: int, pdu: bytes) -> bytes:
    return struct.pack(">HHHB", tid, 0, len(pdu) + 1, unit) + pdu


def registers(*values: int) -> bytes:
    return struct.pack(f">BB{len(values)}H", 3, 2 * len(values), *values)


def test_reads_registers_bits_and_exceptions(peer):
    def answer(tid: int, unit: int, pdu: bytes) -> list[bytes]:
        fc, _, count = struct.unpack(">BHH", pdu)
        if fc == 3:
            return [adu(tid, unit, registers(*range(1, count + 1)))]
        if fc == 1:
            return [adu(tid, unit, bytes([1, 1, 0b101]))]
        return [adu(tid, unit, bytes([fc | 0x80, 2]))]

    client = peer(answer)
    reply = client.read_holding_registers(0x100, count=4, device_id=7)
    assert not reply.isError() and reply.registers == [1, 2, 3, 4]
    assert client.read_coils(0, count=3, device_id=7).bits[:3] == [True, False, True]
    refused = client.read_input_registers(0, count=1, device_id=7)
    assert refused.isError() and refused.exception_code == 2
    client.close()


def test_a_reply_in_pieces_is_one_reply(peer):
    client = peer(lambda tid, unit, pdu: [(whole := adu(tid, unit, registers(10, 20)))[:3], whole[3:9], whole[9:]])
    assert client.read_holding_registers(0, count=2, device_id=1).registers == [10, 20]
    client.close()


@pytest.mark.parametrize("wrong", ["transaction", "unit", "function", "byte count", "protocol"])
def test_a_reply_that_does_not_answer_the_request_is_refused(peer, wrong):
    """A late reply to an earlier request (another transaction id), another unit's, another function's, or one
    whose own fields disagree is never taken as the answer (the driver then reconnects and retries)."""
    def answer(tid: int, unit: int, pdu: bytes) -> list[bytes]:
        good = registers(5, 6)
        if wrong == "transaction":
            return [adu(tid - 1, unit, good)]
        if wrong == "unit":
            return [adu(tid, unit + 1, good)]
        if wrong == "function":
            return [adu(tid, unit, b"\x04" + good[1:])]
        if wrong == "byte count":
            return [adu(tid, unit, b"\x03\x06" + good[2:])]
        return [struct.pack(">HHHB", tid, 1, len(good) + 1, unit) + good]

    client = peer(answer)
    with pytest.raises(ModbusIOException):
        client.read_holding_registers(0, count=2, device_id=3)
    client.close()


def test_every_wait_is_bounded_and_a_closed_link_is_said(peer):
    client = peer(lambda tid, unit, pdu: [adu(tid, unit, registers(1))[:5]])  # half a reply, then silence
    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        client.read_holding_registers(0, count=1, device_id=1)
    assert time.monotonic() - t0 < 2.5  # the 0.5 s timeout, twice at most (first wait, then the rest)
    client.close()
    client = peer(lambda tid, unit, pdu: None)  # the device hangs up
    with pytest.raises(ConnectionException):
        client.read_holding_registers(0, count=1, device_id=1)
    client.close()
    assert not client.connected
