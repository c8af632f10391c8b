"""A failing robustness case kept as evidence and as something to run again: the exact bytes of the TCP
conversation as a pcap (written with scapy's ``wrpcap``, readable in Wireshark) and the seed and settings
that generated it as JSON beside it. ``harness replay`` reads the pcap back (``read``).

On a serial line (Modbus RTU) there are no packets to dress the frames in: the JSON holds every frame as hex
with its direction and time (``frames``), and the pcap has link type DLT_USER0 (147), one frame per record,
each record a direction byte (0: harness to DUT, 1: DUT to harness) and the RTU frame as on the line
(Wireshark: DLT_USER 147, header size 1, payload protocol mbrtu). ``read_serial`` reads either back.

The conversation is kept as the harness saw it: a SYN when a connection opened, the payloads both ways,
a FIN when the harness closed it. Loopback addresses and ports are recorded as they were; replay sends the
client's side to whatever address the rig gives now.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Event = Literal["open", "send", "reply", "close"]
MAX_EVENTS = 200_000  # a conversation kept in memory is bounded (a lab's long storm keeps its first part)


@dataclass(frozen=True)
class Step:
    conn: int  # the harness's connection number in this campaign
    event: Event
    t: float
    data: bytes = b""


@dataclass
class Conversation:
    """Everything one campaign sent and received, in order (thread-safe: storms send from threads)."""

    host: str
    port: int
    steps: list[Step] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, conn: int, event: Event, data: bytes = b"") -> None:
        with self._lock:
            if len(self.steps) < MAX_EVENTS:
                self.steps.append(Step(conn, event, time.time(), data))

    def of(self, conns: set[int]) -> Conversation:
        """The part of the conversation on these connections (the cases under suspicion)."""
        return Conversation(self.host, self.port, [s for s in self.steps if s.conn in conns])


def write(conversation: Conversation, pcap: Path, meta: dict[str, Any]) -> tuple[Path, Path]:
    """``pcap`` and its ``.json`` (seed, settings, cases) — the reproducer."""
    from scapy.layers.inet import IP, TCP
    from scapy.layers.inet6 import IPv6
    from scapy.packet import Raw
    from scapy.utils import wrpcap

    pcap.parent.mkdir(parents=True, exist_ok=True)
    server = conversation.host if conversation.host != "localhost" else "127.0.0.1"
    v6 = ipaddress.ip_address(server).version == 6
    client = "::1" if v6 else "127.0.0.1"
    seq: dict[tuple[int, bool], int] = {}
    packets = []
    for step in conversation.steps:
        sport = 40000 + step.conn % 20000
        outbound = step.event != "reply"
        src, dst = (client, server) if outbound else (server, client)
        ports = (sport, conversation.port) if outbound else (conversation.port, sport)
        flags = {"open": "S", "send": "PA", "reply": "PA", "close": "FA"}[step.event]
        key = (step.conn, outbound)
        n = seq.get(key, 1000)
        ip = IPv6(src=src, dst=dst) if v6 else IP(src=src, dst=dst)
        pkt = ip / TCP(sport=ports[0], dport=ports[1], flags=flags, seq=n)
        if step.data:
            pkt = pkt / Raw(step.data)
        seq[key] = n + max(1, len(step.data))
        pkt.time = step.t
        packets.append(pkt)
    wrpcap(str(pcap), packets)
    sidecar = pcap.with_suffix(".json")
    sidecar.write_text(json.dumps({**meta, "pcap": pcap.name, "server": f"{conversation.host}:{conversation.port}",
                                   "packets": len(packets)}, indent=2, ensure_ascii=False), encoding="utf-8")
    return pcap, sidecar


SERIAL_LINKTYPE = 147  # DLT_USER0
TO_DUT, FROM_DUT = 0, 1  # the direction byte that starts every record of a serial pcap


def write_serial(conversation: Conversation, pcap: Path, meta: dict[str, Any]) -> tuple[Path, Path]:
    """A serial line's conversation: ``pcap`` (DLT_USER0) and its ``.json`` with every frame as hex."""
    from scapy.packet import Raw
    from scapy.utils import wrpcap

    pcap.parent.mkdir(parents=True, exist_ok=True)
    frames = [s for s in conversation.steps if s.event in ("send", "reply") and s.data]
    packets = []
    for step in frames:
        pkt = Raw(bytes([TO_DUT if step.event == "send" else FROM_DUT]) + step.data)
        pkt.time = step.t
        packets.append(pkt)
    with _scapy_quiet():
        wrpcap(str(pcap), packets, linktype=SERIAL_LINKTYPE)
    t0 = frames[0].t if frames else 0.0
    sidecar = pcap.with_suffix(".json")
    sidecar.write_text(json.dumps({
        **meta, "pcap": pcap.name, "link": "serial", "serial_port": conversation.host,
        "pcap_format": f"link type {SERIAL_LINKTYPE} (DLT_USER0); each record: 1 direction byte (0 to the DUT, "
                       "1 from it), then the RTU frame",
        "frames": [{"case": s.conn - 1 if s.conn else None, "dir": "sent" if s.event == "send" else "received",
                    "t_s": round(s.t - t0, 6), "hex": s.data.hex()} for s in frames]},
        indent=2, ensure_ascii=False), encoding="utf-8")
    return pcap, sidecar


def is_serial(path: Path) -> bool:
    """Is ``path`` a serial line's reproducer (its JSON, or a pcap of link type DLT_USER0)?"""
    if path.suffix == ".json":
        return json.loads(path.read_text(encoding="utf-8")).get("link") == "serial"
    from scapy.utils import PcapReader

    with _scapy_quiet(), PcapReader(str(path)) as reader:
        return reader.linktype == SERIAL_LINKTYPE


@contextlib.contextmanager
def _scapy_quiet() -> Iterator[None]:
    """scapy warns of every Raw record under a link type it has no layer for; DLT_USER0 is such a type."""
    log = logging.getLogger("scapy.runtime")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


def read_serial(path: Path) -> list[ReplayStep]:
    """The frames the harness sent on the line, with the recorded gaps between them, from the JSON or the pcap."""
    sent: list[tuple[float, bytes]] = []
    if path.suffix == ".json":
        doc = json.loads(path.read_text(encoding="utf-8"))
        sent = [(float(f["t_s"]), bytes.fromhex(f["hex"])) for f in doc.get("frames", []) if f["dir"] == "sent"]
    else:
        from scapy.utils import rdpcap

        with _scapy_quiet():
            records = rdpcap(str(path))
        sent = [(float(r.time), bytes(r)[1:]) for r in records if bytes(r)[:1] == bytes([TO_DUT])]
    steps, last = [], None
    for t, data in sent:
        steps.append(ReplayStep(0, "send", data, 0.0 if last is None else max(0.0, t - last)))
        last = t
    return steps


@dataclass(frozen=True)
class ReplayStep:
    conn: int
    event: Event
    data: bytes
    gap_s: float  # since the previous client step, as recorded


def read(pcap: Path) -> list[ReplayStep]:
    """The client's side of a kept conversation: opens, sends and closes per connection, with the recorded
    gaps between them. The server is the side of the first packet's destination port."""
    from scapy.layers.inet import TCP
    from scapy.packet import Raw
    from scapy.utils import rdpcap

    steps: list[ReplayStep] = []
    server_port: int | None = None
    last_t: float | None = None
    for pkt in rdpcap(str(pcap)):
        if TCP not in pkt:
            continue
        tcp = pkt[TCP]
        server_port = tcp.dport if server_port is None else server_port
        if tcp.dport != server_port:
            continue  # the server's replies
        flags = str(tcp.flags)
        event: Event = "open" if "S" in flags else "close" if "F" in flags else "send"
        data = bytes(pkt[Raw].load) if Raw in pkt else b""
        if event == "send" and not data:
            continue
        t = float(pkt.time)
        steps.append(ReplayStep(tcp.sport, event, data, 0.0 if last_t is None else max(0.0, t - last_t)))
        last_t = t
    return steps
