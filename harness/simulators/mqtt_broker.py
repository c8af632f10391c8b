"""A loopback MQTT broker process (`harness sim mqtt-broker`): the head-end's side of an uplink.

A data concentrator pushes its records to a main and a reserve broker. On a bench the harness runs
each broker as its own process (amqtt's Broker) so that a broken link can be made real: SIGKILL the
process and the device sees a reset connection; relaunch it and the device must come back. No
persistence (a relaunched broker starts empty, as a restarted head-end broker would without a
store), anonymous clients allowed, loopback only. Prints a ready line once it listens and exits
cleanly on SIGTERM/SIGINT.

``--log-messages FILE`` appends every PUBLISH the broker accepts (one JSON line: receive time,
client id, topic, retain flag, payload) — the broker's own account of what reached it, kept across
relaunches and independent of whether a subscriber happened to be connected at that moment.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

# Only `harness sim mqtt-broker` imports this module (cli.SIMULATORS), so amqtt loads only for a broker.
from amqtt.plugins.base import BasePlugin

PROG = "harness sim mqtt-broker"
LOOPBACK = ("127.0.0.1", "::1", "localhost")


def broker_config(host: str, port: int, message_log: Path | None = None) -> dict[str, Any]:
    """One TCP listener, anonymous access and nothing else (no $SYS topics, no packet logging)."""
    bind = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    plugins: dict[str, Any] = {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}}
    if message_log is not None:
        plugins[f"{__name__}.MessageLog"] = {"path": str(message_log)}
    return {"listeners": {"default": {"type": "tcp", "bind": bind}}, "plugins": plugins}


class MessageLog(BasePlugin):  # type: ignore[type-arg]
    """Appends each accepted PUBLISH as a JSON line, written through at once (survives SIGKILL)."""

    @dataclass
    class Config:
        path: str = ""

    def __init__(self, context: Any) -> None:
        super().__init__(context)
        self._file: IO[str] = open(self.config.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()

    async def on_broker_message_received(self, *, client_id: str, message: Any) -> None:
        if message is None or not message.topic:
            return
        entry = {"t": time.time(), "client_id": client_id, "topic": message.topic,
                 "retain": bool(message.publish_packet and message.publish_packet.retain_flag),
                 "payload": bytes(message.data).decode("utf-8", "replace")}
        self._file.write(json.dumps(entry) + "\n")
        self._file.flush()

    async def close(self) -> None:
        self._file.close()


async def serve(host: str, port: int, ready_file: Path | None, message_log: Path | None = None) -> None:
    from amqtt.broker import Broker

    broker = Broker(broker_config(host, port, message_log))
    await broker.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"{PROG} ready on {host}:{port}", flush=True)
    if ready_file is not None:
        ready_file.write_text(f"{host}:{port}\n", encoding="utf-8")
    await stop.wait()
    try:  # amqtt waits for its plugins and sessions; a broker that cannot stop in time is simply ended
        await asyncio.wait_for(broker.shutdown(), timeout=5.0)
    except Exception as exc:  # exiting anyway; say why it was not clean
        print(f"{PROG}: shutdown incomplete: {type(exc).__name__}: {exc}", file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1", help="listen address (loopback only)")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--ready-file", type=Path, help="written with HOST:PORT once the broker listens")
    p.add_argument("--log-messages", type=Path, metavar="FILE",
                   help="append every accepted PUBLISH to FILE as a JSON line (kept across relaunches)")
    p.add_argument("-v", "--verbose", action="store_true", help="amqtt's own log at INFO")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.host not in LOOPBACK:
        print(f"{PROG}: the simulated broker listens on loopback only (127.0.0.1 or ::1)", file=sys.stderr)
        return 2
    if not 0 < args.port < 65536:
        print(f"{PROG}: --port must be 1..65535", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if not args.verbose:  # amqtt logs every dropped client connection as an error: that is our daily work
        logging.getLogger("amqtt").setLevel(logging.CRITICAL)
    try:
        asyncio.run(serve(args.host, args.port, args.ready_file, args.log_messages))
    except OSError as exc:  # the port is taken, typically
        print(f"{PROG}: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    return 0
