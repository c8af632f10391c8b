"""`harness replay PCAP --rig RIG [--dut NAME]`: send a kept reproducer to a DUT again.

A robustness check that failed keeps the exact bytes of the conversation that broke the DUT as a pcap
(``reproducers/`` in its evidence). This brings the rig's DUT up (a simulator is launched, with ``--defect``
seeded if asked), replays the client's side of that conversation — connections opened and closed as
recorded, the recorded gaps (each at most a second), every reply awaited as in the campaign — and then asks
whether the DUT still answers a valid request. Exit 0: it does; 1: it does not (the reproducer reproduces);
2: usage, configuration, or a target the safety rules refuse — refused before a single packet.

A reproducer of a DUT on a serial line (Modbus RTU: a DLT_USER0 pcap, or its JSON) is sent over the rig's
serial port, frame by frame with the recorded gaps, each separated by the line's silence. A serial line
reaches nothing but the DUT on it: it needs a rig that allows destructive suites, no allow-list.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import socket

    from harness.bench import DutRuntime
    from harness.config.loading import LoadedRig
    from harness.config.robustness import Robustness
    from harness.conformance.wire.campaign import Campaign
    from harness.conformance.wire.reproducer import ReplayStep
    from harness.conformance.wire.targets import WireTarget

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2
MAX_GAP_S = 1.0


def _err(message: str) -> int:
    print(f"harness replay: {message}", file=sys.stderr)
    return EXIT_USAGE


def replay(pcap: Path, rig_path: Path, dut_name: str | None, defects: list[str], out: Path | None) -> int:
    from harness.config import ConfigError, load_rig
    from harness.conformance.wire import reproducer
    from harness.conformance.wire.safety import target_refusal

    try:
        loaded = load_rig(rig_path)
    except ConfigError as exc:
        return _err(f"invalid rig:\n{exc}")
    rig = loaded.rig
    names = list(rig.duts)
    name = dut_name or (names[0] if len(names) == 1 else None)
    if name not in rig.duts:
        return _err(f"name the DUT with --dut (one of: {', '.join(names)})" if dut_name is None
                    else f"no DUT {dut_name!r} on rig {rig.name!r}; DUTs: {', '.join(names)}")
    spec = rig.duts[name]
    if not rig.allow_destructive:
        return _err(f"refused: rig {rig.name!r} does not allow destructive suites (allow_destructive: false), and "
                    "a reproducer is an attack")
    serial = spec.transport.tcp is None
    if not serial and spec.link != "netns":  # a namespace the harness makes is allowed by construction
        refused = target_refusal(spec.transport.tcp.host, rig.lab_allow_list)
        if refused is not None:
            return _err(refused)
    from scapy.error import Scapy_Exception

    from harness.config.safe_files import not_regular

    why = not_regular(pcap)  # a FIFO would block the read, /dev/zero never end it
    if why is not None:
        return _err(f"cannot read {pcap}: {why}")
    try:
        if reproducer.is_serial(pcap) != serial:
            return _err(f"{pcap} is a {'TCP' if serial else 'serial line'} conversation and {name} is on "
                        f"{'a serial line' if serial else 'TCP'}: replay it on a DUT of its own transport")
        steps = reproducer.read_serial(pcap) if serial else reproducer.read(pcap)
    except (OSError, ValueError, KeyError, Scapy_Exception) as exc:  # whatever the file is, never a traceback
        return _err(f"cannot read {pcap}: {exc}")
    if not steps:
        return _err(f"{pcap} holds no client packets to send")
    out = out or Path(tempfile.mkdtemp(prefix=f"harness-replay-{rig.name}-"))
    return _replay_on_bench(loaded, name, defects, out, steps)


def _replay_on_bench(loaded: LoadedRig, name: str, defects: list[str], out: Path,
                     steps: list[ReplayStep]) -> int:
    from harness.bench import Bench, BenchError
    from harness.conformance.wire.campaign import Campaign
    from harness.conformance.wire.safety import refusal
    from harness.conformance.wire.targets import wire_target
    from harness.devices.api import DeviceError
    from harness.fault_injection.launcher import LaunchError
    from harness.verdicts import Inconclusive

    rig = loaded.rig
    bench = Bench(loaded, out, defects)
    try:
        try:
            rt = bench.dut(name)
        except (BenchError, LaunchError, DeviceError) as exc:
            return _err(f"{name} did not come up: {exc}")
        refused = refusal(rt, rig)
        if refused is not None:
            return _err(refused)
        try:
            target = wire_target(rt)
        except Inconclusive as exc:
            return _err(str(exc))
        wait = (rt.profile.modbus.response_time_s if rt.profile.modbus else None) or rt.timing.request_timeout_s
        if target.serial_port is not None:
            return _replay_on_line(rt, target, rig.robustness, out, steps, wait)
        campaign = Campaign(target.host, target.port, rig.robustness, target.length)
        print(f"replaying {len(steps)} client steps to {name} at {target.host}:{target.port} "
              f"({target.protocol}; defects: {', '.join(rt.defects) or 'none'}; evidence in {out})")
        answered = _send(campaign, steps, rig.robustness.case_timeout_s)
        time.sleep(0.2)
        _, reply, why = campaign.exchange(target.probe, wait, wait)
        alive = target.valid(reply)
        exited = rt.process is not None and not rt.process.running
        status = f" — the DUT process has exited (status {rt.process.proc.returncode})" if exited else ""
        verdict = "answers" if alive else f"does NOT answer ({why or 'no answer'})"
        print(f"{answered} replies; afterwards {name} {verdict} a valid request{status}")
        return EXIT_OK if alive else EXIT_FAIL
    finally:
        bench.close()


def _replay_on_line(rt: DutRuntime, target: WireTarget, settings: Robustness, out: Path,
                    steps: list[ReplayStep], wait: float) -> int:
    """The frames the harness sent, on the rig's serial line, with the recorded gaps (each at most a second),
    every reply awaited as in the campaign; then a valid request."""
    from harness.conformance.wire.serial_campaign import SerialCampaign

    name = rt.name
    line = SerialCampaign(rt, settings, monitor=None, length=target.length)
    try:
        print(f"replaying {len(steps)} frames to {name} on the serial line {target.serial_port} "
              f"(defects: {', '.join(rt.defects) or 'none'}; evidence in {out})")
        answered = 0
        for n, step in enumerate(steps):
            if time.perf_counter() > line.deadline:
                print("  … stopped: the rig's robustness.max_duration_s is up")
                break
            time.sleep(min(step.gap_s, MAX_GAP_S))
            reply = line.exchange(n + 1, step.data, settings.case_timeout_s)
            answered += bool(reply)
            shown = reply.hex() if reply else "no reply"
            print(f"  [{n}] sent {step.data.hex()[:64]}{'…' if len(step.data) > 32 else ''} → {shown[:64]}")
        time.sleep(0.2)
        alive = line.fresh_connections_served(target.probe, target.valid, 1, wait) == 1
    finally:
        line.close()
    exited = rt.process is not None and not rt.process.running
    status = f" — the DUT process has exited (status {rt.process.proc.returncode})" if exited else ""
    print(f"{answered} replies; afterwards {name} {'answers' if alive else 'does NOT answer'} a valid request{status}")
    return EXIT_OK if alive else EXIT_FAIL


def _send(c: Campaign, steps: list[ReplayStep], reply_wait_s: float) -> int:
    """The client's side, as recorded (bounded by the rig's ``max_duration_s``); returns replies received."""
    open_conns: dict[int, socket.socket] = {}
    answered = 0
    for step in steps:
        if time.perf_counter() > c.deadline:
            print("  … stopped: the rig's robustness.max_duration_s is up")
            break
        time.sleep(min(step.gap_s, MAX_GAP_S))
        s = open_conns.get(step.conn)
        if step.event == "close":
            if s is not None:
                c.close(step.conn, s)
                del open_conns[step.conn]
            continue
        if s is None:
            _, s, refused = c.open(reply_wait_s * 10 + 1)
            if s is None:
                print(f"  [{step.conn}] connection refused ({refused})")
                continue
            open_conns[step.conn] = s
        if step.event == "send":
            c.send(step.conn, s, step.data)
            reply, closed = c.receive(step.conn, s, reply_wait_s)
            answered += bool(reply)
            shown = reply.hex() if reply else ("connection closed" if closed else "no reply")
            print(f"  [{step.conn}] sent {step.data.hex()[:64]}{'…' if len(step.data) > 32 else ''} → {shown[:64]}")
    for conn, s in open_conns.items():
        c.close(conn, s)
    return answered
