"""The head-end side of a bench, for a DUT that pushes its data (a data concentrator).

For each upstream channel (main, reserve) the bench needs a broker — one the harness runs on
loopback (`harness sim mqtt-broker`, a real amqtt broker process) or the lab's own — and, when the
link is to be faulted, the harness's link-fault proxy between the DUT and that broker. The harness
subscribes to every broker directly as the collecting head-end (never through the link under
test). All of it starts before the DUT is launched (the DUT's command line names the URLs) and is
stopped by PID with the DUT.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.config.rig import Launch, Upstream, UpstreamChannel
from harness.devices.mqtt_headend import HeadEnd
from harness.fault_injection.launcher import DutProcess
from harness.fault_injection.ports import free_port
from harness.fault_injection.record import FaultLog

CHANNELS = ("main", "reserve")


class UpstreamError(RuntimeError):
    """A broker, proxy or the head-end could not be brought up."""


def _tcp_probe(host: str, port: int) -> None:
    with socket.create_connection((host, port), timeout=0.5):
        pass


@dataclass
class UpstreamChannelRuntime:
    name: str
    spec: UpstreamChannel
    broker: tuple[str, int] = ("", 0)
    broker_process: DutProcess | None = None
    link: Any = None  # LinkProxy when the link is proxied

    @property
    def dut_url(self) -> str:
        host, port = self.link.address if self.link is not None else self.broker
        return f"mqtt://{host}:{port}"


@dataclass
class UpstreamRuntime:
    dut: str
    spec: Upstream
    topic_prefix: str
    out_dir: Path
    faults: FaultLog
    seed: int = 1
    channels: dict[str, UpstreamChannelRuntime] = field(default_factory=dict)
    headend: HeadEnd | None = None

    def start(self) -> None:
        try:
            for name in CHANNELS:
                spec = getattr(self.spec, name)
                if spec is not None:
                    self.channels[name] = self._start_channel(name, spec)
            self.headend = HeadEnd({n: c.broker for n, c in self.channels.items()}, self.topic_prefix,
                                   client_prefix=f"tek-headend-{self.dut}",
                                   log_path=self.out_dir / f"headend-{self.dut}.jsonl").start()
        except Exception:
            self.stop()
            raise

    def _start_channel(self, name: str, spec: UpstreamChannel) -> UpstreamChannelRuntime:
        from harness.fault_injection.link_proxy import LinkProxy

        ch = UpstreamChannelRuntime(name, spec)
        b = spec.broker
        host = "127.0.0.1" if b.host == "localhost" else b.host
        port = free_port(host) if b.port == "auto" else int(b.port)
        ch.broker = (host, port)
        if b.run:
            launch = Launch(command=["{python}", "-m", "harness", "sim", "mqtt-broker", "--host", host, "--port",
                                     "{port}"], ready_timeout_s=20)
            ch.broker_process = DutProcess(f"{self.dut}-broker-{name}", launch, {"port": str(port)},
                                           self.out_dir / "logs" / f"{self.dut}-broker-{name}.log")
            ch.broker_process.start()
            ch.broker_process.wait_ready(lambda: _tcp_probe(host, port))
        if spec.link == "proxy":
            ch.link = LinkProxy((host, port), name=name, seed=self.seed, faults=self.faults, dut=self.dut).start()
        return ch

    def placeholders(self) -> dict[str, str]:
        return {f"upstream_{name}": ch.dut_url for name, ch in self.channels.items()}

    def link(self, channel: str) -> Any:
        ch = self.channels.get(channel)
        if ch is None or ch.link is None:
            raise UpstreamError(f"{self.dut}: the {channel} channel has no link-fault proxy (rig: upstream."
                                f"{channel}.link: proxy)")
        return ch.link

    def stop(self) -> None:
        if self.headend is not None:
            self.headend.close()
        for ch in self.channels.values():
            try:
                if ch.link is not None:
                    ch.link.close()
            finally:
                if ch.broker_process is not None:
                    ch.broker_process.stop()
