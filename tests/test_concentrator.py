"""The simulated data concentrator at the MQTT level: real broker processes, a real concentrator
process, a paho subscriber on both brokers — all on loopback, all stopped by PID.

Two views of what was delivered: the paho subscriber is the head-end's live view (decoding, order,
retained status); each broker's own message log (``--log-messages``) is the accounting of what
reached it. The log is needed because a relaunched broker may accept the device's back-fill a
moment before any subscriber has reconnected to it — records the device delivered correctly but a
subscriber could never see.

Records are real: the embedded meter closes an interval each time the control channel advances
device time by one capture period (900 s), and hands it to the uplink through its hook.
"""

from __future__ import annotations

import itertools
import json
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.config import load_profile
from harness.fault_injection.ports import free_port
from harness.resources import builtin_profile
from harness.simulators.concentrator import RecordBuffer
from harness.simulators.intervals import IntervalRecord
from tests.conftest import run_cli

PROFILE = builtin_profile("tek-sim-dc1.yaml")
SPEC = load_profile(PROFILE).uplink
PERIOD = load_profile(PROFILE).modbus.load_profile.capture_period_s
SERIAL = 85000001
PY = sys.executable


def wait_until(predicate: Callable[[], Any], timeout: float, step: float = 0.05) -> Any:
    """The predicate's first truthy value, or None after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(step)


class Proc:
    """A child process, stopped by its PID: SIGTERM, a bounded wait, then SIGKILL."""

    proc: subprocess.Popen[bytes] | None = None

    def kill(self) -> float:
        """A power cut (or, for a broker, a really broken link): SIGKILL, nothing gets to run."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        return time.time()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # a frozen process must be able to take the SIGTERM
            self.proc.terminate()
            try:
                self.proc.wait(timeout=8)
            except subprocess.TimeoutExpired:
                self.kill()


class BrokerProc(Proc):
    """`harness sim mqtt-broker` on a fixed port; the message log is kept across relaunches."""

    def __init__(self, name: str, tmp: Path) -> None:
        self.name, self.port = name, free_port()
        self.log = tmp / f"broker-{name}.jsonl"

    def start(self) -> float:
        self.proc = subprocess.Popen([PY, "-m", "harness", "sim", "mqtt-broker", "--port", str(self.port),
                                      "--log-messages", str(self.log)],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], 15)
        assert ready and b"ready" in self.proc.stdout.readline(), f"broker {self.name} did not come up"
        return time.time()

    def freeze(self) -> float:
        """A black-holed link: connections stay open, nothing is answered (SIGSTOP)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)
        return time.time()

    def thaw(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)

    def messages(self, kind: str) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        out = []
        for line in self.log.read_text(encoding="utf-8").splitlines():
            entry = json.loads(line)
            if entry["topic"] == f"{SPEC.topic_prefix}/{SERIAL}/{kind}":
                out.append({**json.loads(entry["payload"]), "_t": entry["t"]})
        return out

    def seqs(self) -> list[int]:
        return [m["seq"] for m in self.messages("interval")]


class Watcher:
    """The head-end's live view: a paho subscriber on each broker, reconnecting on its own."""

    def __init__(self, brokers: dict[str, BrokerProc]) -> None:
        import paho.mqtt.client as mqtt

        self.got: list[tuple[float, str, str, dict[str, Any]]] = []
        self.lock = threading.Lock()
        self.clients = []
        self.subscribed = {name: threading.Event() for name in brokers}
        for name, broker in brokers.items():
            client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-headend-{name}")
            client.on_connect = lambda c, *_: c.subscribe(f"{SPEC.topic_prefix}/#", qos=1)
            client.on_subscribe = lambda c, u, *_, ev=self.subscribed[name]: ev.set()
            client.on_message = self._handler(name)
            client.reconnect_delay_set(min_delay=0.1, max_delay=0.5)
            client.connect_async("127.0.0.1", broker.port, keepalive=10)
            client.loop_start()
            self.clients.append(client)

    def _handler(self, channel: str) -> Callable[..., None]:
        def on_message(client: Any, userdata: Any, msg: Any) -> None:
            with self.lock:
                self.got.append((time.time(), channel, msg.topic.rsplit("/", 1)[-1], json.loads(msg.payload)))
        return on_message

    def seen(self, kind: str, channel: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [p for _, ch, k, p in self.got if k == kind and channel in (None, ch)]

    def close(self) -> None:
        for client in self.clients:
            client.disconnect()
            client.loop_stop()


class Concentrator(Proc):
    """`harness sim concentrator` with a state dir that outlives the process (power cuts)."""

    def __init__(self, tmp: Path, brokers: dict[str, BrokerProc], profile: Path, defects: str) -> None:
        self.state, self.profile, self.defects = tmp / "dc-state", profile, defects
        self.urls = {name: f"mqtt://127.0.0.1:{b.port}" for name, b in brokers.items()}
        self.control_port = 0

    def start(self) -> None:
        self.control_port = free_port()
        self.proc = subprocess.Popen(
            [PY, "-m", "harness", "sim", "concentrator", "--profile", str(self.profile), "--state-dir",
             str(self.state), "--tcp", f"127.0.0.1:{free_port()}", "--control", str(self.control_port),
             "--main", self.urls["main"], "--reserve", self.urls["reserve"], "--defects", self.defects],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        assert wait_until(self._answers, 15), "the concentrator did not come up"

    def _answers(self) -> bool:
        try:
            return bool(self.control(op="status")["ok"])
        except OSError:
            return False

    def control(self, **req: Any) -> dict[str, Any]:
        with socket.create_connection(("127.0.0.1", self.control_port), timeout=5) as s:
            s.sendall(json.dumps(req).encode() + b"\n")
            return json.loads(s.makefile().readline())

    def uplink(self) -> dict[str, Any]:
        return self.control(op="status")["uplink"]

    def close_interval(self) -> int:
        """One capture period of device time passes, so the interval in progress closes: the newest seq."""
        reply = self.control(op="advance", seconds=PERIOD)
        assert reply["ok"], reply
        return int(reply["uplink"]["captured_seq"])


class Bench:
    """Two brokers, the head-end's subscribers, one concentrator: everything stopped by PID in close()."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.brokers = {"main": BrokerProc("main", tmp), "reserve": BrokerProc("reserve", tmp)}
        self.watcher: Watcher | None = None
        self.dc: Concentrator | None = None

    def up(self, *, brokers: tuple[str, ...] = ("main", "reserve"), defects: str = "",
           profile: Path = PROFILE) -> Concentrator:
        for name in brokers:
            self.brokers[name].start()
        self.watcher = Watcher(self.brokers)
        for name in brokers:  # the head-end listens before the device can push anything
            assert self.watcher.subscribed[name].wait(10), f"no subscription on the {name} broker"
        self.dc = Concentrator(self.tmp, self.brokers, profile, defects)
        self.dc.start()
        return self.dc

    def close(self) -> None:
        try:
            if self.dc is not None:
                self.dc.stop()
            if self.watcher is not None:
                self.watcher.close()
        finally:
            for broker in self.brokers.values():
                broker.stop()


@pytest.fixture
def bench(tmp_path: Path) -> Iterator[Bench]:
    b = Bench(tmp_path)
    try:
        yield b
    finally:
        b.close()


def first_at(broker: BrokerProc, seq: int, timeout: float) -> float | None:
    """Broker receive time of record ``seq`` (waiting at most ``timeout``)."""
    found = wait_until(lambda: [m["_t"] for m in broker.messages("interval") if m["seq"] == seq], timeout)
    return found[0] if found else None


def non_decreasing(seqs: list[int]) -> bool:
    return all(a <= b for a, b in itertools.pairwise(seqs))


# ---- the golden concentrator ----------------------------------------------------------------------
def test_golden_switchover_return_buffering_and_power_cut(bench: Bench) -> None:
    dc = bench.up()
    main, reserve = bench.brokers["main"], bench.brokers["reserve"]
    assert bench.watcher is not None
    # 1. records flow to main, in order; the status says main is active
    for _ in range(3):
        seq = dc.close_interval()
    assert wait_until(lambda: [p["seq"] for p in bench.watcher.seen("interval", "main")] == list(range(1, seq + 1)), 5)
    record = bench.watcher.seen("interval", "main")[-1]
    assert record["period_s"] == PERIOD and record["end"] % PERIOD == 0 and record["increments"]["active_import"] > 0
    measured = wait_until(lambda: [s for s in bench.watcher.seen("status", "main") if s["channels"]["main"]["rtt_ms"]],
                          3)  # the status after a PUBACK carries its round trip
    status = measured[-1]
    assert status["active"] == "main" and status["channels"]["main"]["up"] and status["channels"]["reserve"]["up"]
    assert 0 < status["channels"]["main"]["rtt_ms"] < 1000

    # 2. main's broker dies: the next record is on the reserve within the declared switchover time
    t_cut = main.kill()
    seq = dc.close_interval()
    t_reserve = first_at(reserve, seq, SPEC.switchover_s + 2)
    assert t_reserve is not None, f"record {seq} never reached the reserve"
    switchover = t_reserve - t_cut
    assert switchover <= SPEC.switchover_s
    down = wait_until(lambda: [s for s in reserve.messages("status") if not s["channels"]["main"]["up"]], 3)
    assert down and down[-1]["active"] == "reserve" and down[-1]["channels"]["main"]["failures"] >= 1

    # 3. main's broker returns: records on main again within the declared return time, status first
    t_back = main.start()
    back_on_main = None
    while back_on_main is None and time.time() - t_back < SPEC.return_s + 2:
        seq = dc.close_interval()
        back_on_main = first_at(main, seq, 0.5)
    assert back_on_main is not None, "records never came back to main"
    returned = back_on_main - t_back
    assert returned <= SPEC.return_s
    since_back = [e for e in map(json.loads, main.log.read_text().splitlines()) if e["t"] >= t_back]
    assert since_back[0]["topic"].endswith("/status"), "the first thing published on the returning main is the status"

    # 4. both die: records pile up in the buffer (status over the control channel: nobody to publish to)
    main.kill()
    reserve.kill()
    base = seq
    for _ in range(3):
        seq = dc.close_interval()
        assert dc.uplink()["buffered"] == seq - base
    assert wait_until(lambda: dc.uplink()["active"] == "none", 3)

    # 5. power cut while both are down; relaunched, the device still holds the backlog
    dc.kill()
    dc.start()
    assert dc.uplink()["buffered"] == dc.uplink()["captured_seq"] - base >= 3
    for _ in range(2):
        seq = dc.close_interval()
    assert dc.uplink()["buffered"] == seq - base

    # 6. the reserve returns: the backlog is back-filled on it, in order, nothing lost
    backlog = list(range(base + 1, seq + 1))
    reserve.start()
    assert wait_until(lambda: set(backlog) <= set(reserve.seqs()), 10), f"back-fill incomplete: {reserve.seqs()}"
    assert wait_until(lambda: dc.uplink()["buffered"] == 0, 3)
    assert [s for s in reserve.seqs() if s > base] == backlog

    # every seq at least once; in order per channel; at most one duplicate per link failure
    everything = main.seqs() + reserve.seqs()
    assert set(range(1, seq + 1)) <= set(everything)
    assert non_decreasing(main.seqs()) and non_decreasing(reserve.seqs())
    dupes = sum(n - 1 for n in Counter(everything).values())
    assert dupes <= 4  # main cut, main cut again, reserve cut, power cut
    print(f"\nmeasured: switchover {switchover:.3f} s (declared {SPEC.switchover_s:g}), return {returned:.3f} s "
          f"(declared {SPEC.return_s:g}), duplicates {dupes}")


def test_golden_black_holed_links_are_noticed_by_keepalive_and_puback_timeout(bench: Bench) -> None:
    dc = bench.up()
    main, reserve = bench.brokers["main"], bench.brokers["reserve"]
    assert first_at(main, dc.close_interval(), 5) is not None
    # the idle reserve (no records, no status on it) goes silent: only the keepalive can notice
    t_freeze = reserve.freeze()
    assert wait_until(lambda: not dc.uplink()["channels"]["reserve"]["up"], SPEC.switchover_s)
    idle_detect = time.time() - t_freeze
    reserve.thaw()
    assert wait_until(lambda: dc.uplink()["channels"]["reserve"]["up"], SPEC.return_s)
    # main goes silent with a record to send: no PUBACK in time, the record goes to the reserve
    t_freeze = main.freeze()
    t_reserve = first_at(reserve, dc.close_interval(), SPEC.switchover_s + 2)
    assert t_reserve is not None and t_reserve - t_freeze <= SPEC.switchover_s
    status = dc.uplink()
    assert status["active"] == "reserve" and not status["channels"]["main"]["up"]
    print(f"\nmeasured: idle black hole noticed in {idle_detect:.3f} s, switchover on a black-holed main "
          f"{t_reserve - t_freeze:.3f} s (declared {SPEC.switchover_s:g})")


# ---- the defect catalogue ---------------------------------------------------------------------------
# Each defect failing its check and clause through `harness certify` is proved in tests/test_failover.py.
def test_concentrator_lists_its_defects() -> None:
    res = run_cli("sim", "concentrator", "--list-defects")
    assert res.returncode == 0 and "failover_slow" in res.stdout and "KZ-83-02" in res.stdout


# ---- the buffer and the command line, without processes ------------------------------------------
def test_buffer_log_survives_torn_lines_and_compacts(tmp_path: Path) -> None:
    buf = RecordBuffer(tmp_path, capacity=3)
    for seq in range(1, 6):
        assert buf.capture(IntervalRecord(seq=seq, end=900 * seq, period_s=900))
    assert [r.seq for r in buf.records] == [3, 4, 5] and buf.dropped == 2  # full: the oldest go, counted
    buf.ack(3)
    buf.close()
    with (tmp_path / RecordBuffer.FILE).open("a") as f:
        f.write('{"rec": {"seq": 6, "end"')  # the power failed in the middle of a write
    again = RecordBuffer(tmp_path, capacity=3)
    assert [r.seq for r in again.records] == [4, 5] and again.dropped == 2 and again.last_seq == 5
    assert not again.capture(IntervalRecord(seq=5, end=4500, period_s=900))  # a replay is not captured twice
    again.close()
    assert len((tmp_path / RecordBuffer.FILE).read_text().splitlines()) == 3  # compacted on power-up


def test_cli_usage_errors() -> None:
    res = run_cli("sim", "concentrator", "--state-dir", "/tmp/unused", "--tcp", "127.0.0.1:1")
    assert res.returncode == 2 and "--main" in res.stderr
    res = run_cli("sim", "concentrator", "--state-dir", "/tmp/unused", "--tcp", "127.0.0.1:1",
                  "--main", "http://127.0.0.1:1")
    assert res.returncode == 2 and "mqtt://" in res.stderr
    res = run_cli("sim", "mqtt-broker", "--host", "10.0.0.1", "--port", "1883")
    assert res.returncode == 2 and "loopback" in res.stderr


def test_embedded_meter_profile_is_the_em4_meter():
    """TEK-SIM-DC1 repeats the EM4 meter it embeds: its register map, clock and tariffs must stay EM4's."""
    em4 = load_profile(builtin_profile("tek-sim-em4.yaml")).model_dump()
    dc1 = load_profile(builtin_profile("tek-sim-dc1.yaml")).model_dump()
    for key in ("tariffs", "clock"):
        assert dc1[key] == em4[key], key
    for key in ("points", "settings", "clock", "max_registers_per_request"):
        assert dc1["modbus"][key] == em4["modbus"][key], key
