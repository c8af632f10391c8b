"""One robustness check's frame: refused unless safe, baseline, campaign under the monitor, judgement, the
reproducer of whatever failed, and the DUT restored for the rest of the run."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from harness.conformance.robustness import amr_essential
from harness.conformance.robustness.coverage import Coverage
from harness.conformance.robustness.essential import (
    Monitor,
    baseline,
    essential_quantities,
    judge_monitor,
    nothing_lost,
    restore,
)
from harness.conformance.wire import reproducer
from harness.conformance.wire.campaign import Campaign
from harness.conformance.wire.modbus_fuzz import Case
from harness.conformance.wire.modbus_targets import response_time_s
from harness.conformance.wire.safety import refusal
from harness.conformance.wire.serial_campaign import SerialCampaign
from harness.conformance.wire.targets import WireTarget, wire_target
from harness.reporting.texts import Msg
from harness.verdicts import Inconclusive

SR = ("SR 3.5", "SR 7.1")  # IEC 62443-3-3: input validation; denial-of-service protection


@dataclass
class Finding:
    """What an attack wants kept if the check fails: the connections under suspicion (None: all of them) and
    the fuzz cases sent on them."""

    suspects: set[int] | None = None
    cases: list[Case] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    serves_no_one_new: bool = False  # the DUT takes no new client any more: restored like a dead one
    # Worked out again once the monitor has stopped: a read still waiting when the campaign ended (a device that
    # stalls rather than dies) is only seen then.
    settle: Callable[[], Finding] | None = None


Attack = Callable[[Campaign | SerialCampaign, Monitor, WireTarget, Coverage], Finding]


def under_attack(dut: Any, check: Any, rig: Any, attack: Attack) -> None:
    """Run ``attack`` against the DUT while its essential function is monitored, and judge the DUT by it; a
    campaign the time bound cut below the rig's minimum coverage leaves the check INCONCLUSIVE (coverage.py)."""
    refused = refusal(dut, rig)
    if refused is not None:
        raise Inconclusive(refused)  # before a single packet: nothing below has sent anything yet
    target = wire_target(dut)
    quantities = essential_quantities(dut)
    base = baseline(dut, quantities)
    record = (lambda **f: dut.transcript.record(dut.name, **f)) if dut.transcript is not None else None
    # On a serial line the monitor reads between the campaign's frames (one exchange at a time on a line).
    monitor = Monitor(dut, quantities, rig.robustness.monitor_interval_s, threaded=target.serial_port is None)
    campaign: Campaign | SerialCampaign = Campaign(target.host, target.port, rig.robustness, target.length, record) \
        if target.serial_port is None else SerialCampaign(dut, rig.robustness, monitor, record, target.length)
    coverage = Coverage(rig.robustness)
    try:
        with monitor:
            finding = attack(campaign, monitor, target, coverage)
        if finding.settle is not None:
            finding = finding.settle()
        judge_monitor(check, monitor, response_time_s(dut))
        if monitor.down and not campaign.fresh_connections_served(target.probe, target.valid, 1,
                                                                  response_time_s(dut)):
            check.equal(Msg("answers after the campaign"),
                        Msg("no answer to a valid request on the line") if target.serial_port
                        else Msg("no answer to a valid request on a new connection"), Msg("answered"))
            alive = False  # the driver's retries would only repeat it
        else:
            alive = nothing_lost(check, dut, base, quantities)
    finally:
        if isinstance(campaign, SerialCampaign):
            campaign.close()
        amr_essential.forget(dut)
    if check.failures:
        _keep_reproducer(dut, check, rig, campaign, target, finding)
    if not alive or finding.serves_no_one_new:
        done = restore(dut)
        if done:
            check.measure(Msg("DUT after the check"), done, passed=True,
                          note=Msg("the failure stands; later checks run"))
    short = coverage.verdict(check)
    if short is not None:
        raise Inconclusive(short)
    check.require()


def _keep_reproducer(dut: Any, check: Any, rig: Any, campaign: Campaign, target: WireTarget,
                     finding: Finding) -> None:
    conversation = campaign.conversation if finding.suspects is None else campaign.conversation.of(finding.suspects)
    base = dut.out_dir / "reproducers" / f"{check.id}-{dut.name}"
    meta = {"check": check.id, "dut": dut.name, "protocol": target.protocol, "seed": rig.seed,
            "robustness": rig.robustness.model_dump(), **finding.meta,
            "cases": [{"index": c.index, "family": c.family, "what": c.what, "frame": c.frame.hex()}
                      for c in finding.cases],
            "replay": f"harness replay {base.name}.pcap --rig RIG --dut {dut.name}"}
    if not conversation.steps:
        sidecar = base.with_suffix(".json")
        sidecar.parent.mkdir(parents=True, exist_ok=True)
        import json

        sidecar.write_text(json.dumps({**meta, "pcap": None}, indent=2), encoding="utf-8")
        check.measure(Msg("reproducer"), sidecar.name, passed=True, note=Msg("seed and settings (no raw bytes: the "
                                                                        "attack went through the Device API)"))
        return
    if target.serial_port is not None:
        pcap, sidecar = reproducer.write_serial(conversation, base.with_suffix(".pcap"), meta)
        events = Msg("serial frames")
    else:
        pcap, sidecar = reproducer.write(conversation, base.with_suffix(".pcap"), meta)
        events = Msg("TCP events")
    check.measure(Msg("reproducer"), Msg("reproducers/{name}", name=pcap.name), passed=True,
                  note=Msg("{n} {events}, seed {seed} in {name}; `harness replay reproducers/{name2} --rig RIG` "
                           "sends it again", n=len(conversation.steps), events=events, seed=rig.seed, name=sidecar.name,
                           name2=pcap.name))
