"""The collecting head-end: the harness subscribes to every upstream broker of a pushing DUT.

A data concentrator does not answer requests for its interval data; it pushes them. The harness
therefore plays the head-end (the AMR server's collector): one MQTT subscription per broker,
straight to the broker — never through the link under test — and every message kept with the
channel it came on and the harness's receive time, so suites can tell which channel carried what,
and when. Decoding is the harness's own (plain JSON), independent of any simulator.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Received:
    """One message as the head-end got it. ``t`` is time.time() at receipt."""

    t: float
    channel: str
    topic: str
    payload: dict[str, Any]

    @property
    def kind(self) -> str:
        return self.topic.rsplit("/", 1)[-1]


class HeadEnd:
    """Subscribes to ``{prefix}/#`` on each channel's broker; thread-safe, bounded waits."""

    def __init__(self, brokers: dict[str, tuple[str, int]], topic_prefix: str, *, client_prefix: str = "tek-headend",
                 log_path: Path | None = None):
        self.brokers = brokers
        self._log = log_path.open("a", encoding="utf-8") if log_path is not None else None  # evidence: headend.jsonl
        self.topic = f"{topic_prefix.rstrip('/')}/#"
        self.client_prefix = client_prefix
        self._messages: list[Received] = []
        self._cond = threading.Condition()
        self._clients: dict[str, Any] = {}
        self._connected: dict[str, threading.Event] = {}
        self.undecodable = 0

    def start(self, timeout_s: float = 10.0) -> HeadEnd:
        import paho.mqtt.client as mqtt

        for channel, (host, port) in self.brokers.items():
            client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"{self.client_prefix}-{channel}")
            connected = threading.Event()
            client.on_connect = self._on_connect(channel, connected)
            client.on_message = self._on_message(channel)
            client.reconnect_delay_set(min_delay=1, max_delay=2)
            client.connect_async(host, port, keepalive=10)
            client.loop_start()
            self._clients[channel], self._connected[channel] = client, connected
        deadline = time.monotonic() + timeout_s
        for channel, event in self._connected.items():
            if not event.wait(max(0.0, deadline - time.monotonic())):
                self.close()
                raise ConnectionError(f"the head-end could not subscribe on the {channel} broker "
                                      f"{self.brokers[channel][0]}:{self.brokers[channel][1]} within {timeout_s:g} s")
        return self

    def _on_connect(self, channel: str, connected: threading.Event) -> Callable[..., None]:
        def handler(client: Any, userdata: Any, flags: Any, reason: Any, properties: Any = None) -> None:
            client.subscribe(self.topic, qos=1)
            connected.set()

        return handler

    def _on_message(self, channel: str) -> Callable[..., None]:
        def handler(client: Any, userdata: Any, msg: Any) -> None:
            t = time.time()
            try:
                payload = json.loads(msg.payload)
                if not isinstance(payload, dict):
                    raise ValueError("not an object")
            except ValueError:
                self.undecodable += 1
                return
            with self._cond:
                self._messages.append(Received(t, channel, msg.topic, payload))
                if self._log is not None:
                    self._log.write(json.dumps({"t": t, "channel": channel, "topic": msg.topic, "payload": payload})
                                    + "\n")
                    self._log.flush()
                self._cond.notify_all()

        return handler

    def close(self) -> None:
        for client in self._clients.values():
            client.disconnect()
            client.loop_stop()
        self._clients.clear()
        with self._cond:
            if self._log is not None:
                self._log.close()
                self._log = None

    # ---- what arrived -------------------------------------------------------------------------
    def messages(self, kind: str | None = None, channel: str | None = None, since: float = 0.0) -> list[Received]:
        with self._cond:
            return [m for m in self._messages
                    if (kind is None or m.kind == kind) and (channel is None or m.channel == channel) and m.t >= since]

    def mark(self) -> int:
        """An index into the messages so far, for 'what arrived after this point'."""
        with self._cond:
            return len(self._messages)

    def before(self, mark: int) -> list[Received]:
        with self._cond:
            return self._messages[:mark]

    def after(self, mark: int, kind: str | None = None) -> list[Received]:
        with self._cond:
            return [m for m in itertools.islice(self._messages, mark, None) if kind is None or m.kind == kind]

    def wait_for(self, predicate: Callable[[Received], bool], timeout_s: float, *, after: int = 0) -> Received | None:
        """The first message (from index ``after``) satisfying ``predicate``, waiting at most ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        seen = after
        with self._cond:
            while True:
                for m in itertools.islice(self._messages, seen, None):
                    if predicate(m):
                        return m
                seen = len(self._messages)
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)
