"""What the failover and buffering suites share: the head-end's view of a pushing DUT.

A concentrator closes an interval when its device time crosses a capture-period boundary and
pushes the record upstream. The suites make intervals happen by letting device time pass one
period at a time (fast on a simulator, real waiting on a real device) and watch, as the
collecting head-end, which channel each record arrives on and when. Every wait is bounded;
limits come from the profile's declared `uplink` times plus the harness's own pumping cadence.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from harness.reporting.texts import Msg
from harness.verdicts import Inconclusive

CADENCE_S = 0.25  # the harness lets an interval close at least this often while it waits for a record
DEFAULT_PERIOD_S = 900


@dataclass(frozen=True)
class PushedRecord:
    """An interval record as the head-end decoded it (its own decoding of the JSON payload)."""

    seq: int
    end: int
    period_s: int
    increments: dict[str, int]
    totals: dict[str, int]
    status: int
    channel: str
    t: float

    @classmethod
    def of(cls, m: Any) -> PushedRecord:
        p = m.payload
        return cls(int(p["seq"]), int(p["end"]), int(p.get("period_s", 0)),
                   {k: int(v) for k, v in p.get("increments", {}).items()},
                   {k: int(v) for k, v in p.get("totals", {}).items()}, int(p.get("status", 0)), m.channel, m.t)


def patience(declared_s: float) -> float:
    """How long to wait for something declared to take ``declared_s``: long enough to tell "late" from
    "never" (half again, plus a second), short enough that a device that never does it fails quickly."""
    return 1.5 * declared_s + 1.0


def uplink_of(dut: Any) -> Any:
    uplink = getattr(dut.profile, "uplink", None)
    if uplink is None:
        raise AssertionError(Msg("the profile declares no `uplink` (protocol, topics, switchover and return times): "
                                 "cl. 83–85 require the channels to be declared"))
    if dut.upstream is None or dut.upstream.headend is None:
        raise Inconclusive(Msg("the rig gives this DUT no `upstream` channels, so the harness has no head-end to "
                               "collect its pushed data on"))
    return uplink


def capture_period(dut: Any) -> int:
    lp = getattr(dut.profile.modbus, "load_profile", None) if dut.profile.modbus else None
    return int(getattr(lp, "capture_period_s", DEFAULT_PERIOD_S)) if lp is not None else DEFAULT_PERIOD_S


def records(messages: list[Any]) -> list[PushedRecord]:
    return [PushedRecord.of(m) for m in messages if m.kind == "interval"]




def pump_until(dut: Any, predicate: Callable[[Any], bool], timeout_s: float, *, after: int) -> Any | None:
    """Let intervals close (one period of device time per CADENCE_S) until a message matches."""
    headend = dut.upstream.headend
    period = capture_period(dut)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        dut.time.elapse(period)
        found = headend.wait_for(predicate, min(CADENCE_S, max(0.0, deadline - time.monotonic())), after=after)
        if found is not None:
            return found
    return None


def on(channel: str) -> Callable[[Any], bool]:
    return lambda m: m.kind == "interval" and m.channel == channel


def ensure_flowing(dut: Any, uplink: Any, channel: str = "main") -> PushedRecord:
    """A fresh record on ``channel`` — the starting point of every sequence (bounded by the declared times)."""
    headend = dut.upstream.headend
    limit = uplink.return_s + uplink.switchover_s + 5 * CADENCE_S
    found = pump_until(dut, on(channel), limit, after=headend.mark())
    if found is None:
        raise AssertionError(Msg("no interval record arrived on the {channel} channel within {limit:g} s of device "
                                 "time passing, before any fault was injected", channel=channel, limit=limit))
    return PushedRecord.of(found)


def latest_delivered(dut: Any, uplink: Any, channel: str = "main", quiet_s: float = 0.5) -> PushedRecord:
    """Records flowing, then a quiet moment (no device time passes, so nothing new closes): the newest
    record delivered — the one after it is the interval in progress now."""
    ensure_flowing(dut, uplink, channel)
    time.sleep(quiet_s)
    return max(records(dut.upstream.headend.messages(kind="interval")), key=lambda r: r.seq)


def device_utc(dut: Any) -> float:
    """The DUT's clock (UTC seconds) through the Device API: where device time stands now."""
    return dut.device.read_clock().value.timestamp()


def settle(dut: Any, uplink: Any, channel: str = "main") -> PushedRecord:
    """After a sequence: records flow on ``channel`` again, and the interval that closed last (by the
    device's own clock) has arrived — back-fill goes oldest first, so everything before it is through."""
    ensure_flowing(dut, uplink, channel)
    period = capture_period(dut)
    newest = math.floor(device_utc(dut) / period) * period
    limit = uplink.return_s + uplink.switchover_s + 10.0
    found = dut.upstream.headend.wait_for(lambda m: m.kind == "interval" and int(m.payload.get("end", 0)) >= newest,
                                          limit)
    if found is None:
        raise AssertionError(Msg("the record of the interval ending {newest} (device clock) did not arrive within "
                                 "{limit:g} s after the links were back", newest=newest, limit=limit))
    return PushedRecord.of(found)


def completeness(check: Any, recs: list[PushedRecord], *, since_seq: int, allowed_duplicates: int,
                 label: str, delivered_before: set[int] | None = None) -> None:
    """Every seq after ``since_seq`` up to the newest arrived, none twice beyond what in-flight loss
    allows (one per link failure: a record in flight when a link dies may be delivered again).
    A record that had already arrived before the sequence (``delivered_before``) and comes again
    counts as delivered twice too."""
    mine = [r for r in recs if r.seq > since_seq]
    seqs = [r.seq for r in mine]
    if not seqs:
        check.measure(Msg("{label}: records", label=label), 0, passed=False, limit=Msg("≥ 1"))
        return
    missing = sorted(set(range(since_seq + 1, max(seqs) + 1)) - set(seqs))
    counts = Counter(seqs)
    again = [r.seq for r in recs if r.seq <= since_seq and r.seq in (delivered_before or set())]
    dupes = sum(n - 1 for n in counts.values() if n > 1) + len(again)
    differing = sum(1 for s, n in counts.items() if n > 1 and len({(r.end, tuple(sorted(r.increments.items())))
                                                                     for r in mine if r.seq == s}) > 1)
    check.equal(Msg("{label}: intervals lost", label=label), len(missing), 0,
                note=Msg("seq {first}…{last}; missing {missing}", first=since_seq + 1, last=max(seqs),
                         missing=missing[:10]) if missing
                else Msg("seq {first}…{last}", first=since_seq + 1, last=max(seqs)))
    check.at_most(Msg("{label}: intervals delivered twice", label=label), dupes, allowed_duplicates,
                  note=Msg("at most one record in flight per link failure may arrive again")
                       + (Msg("; re-sent from before: seq {seqs}", seqs=sorted(set(again))[:10]) if again else ""))
    check.equal(Msg("{label}: duplicates with different content", label=label), differing, 0)


@dataclass(frozen=True)
class Baseline:
    """Where a sequence of faults starts: the newest record delivered, and the head-end's mark after it."""

    last: PushedRecord
    mark: int


def baseline(dut: Any, uplink: Any) -> Baseline:
    last = latest_delivered(dut, uplink)
    return Baseline(last, dut.upstream.headend.mark())


def nothing_lost_since(check: Any, dut: Any, base: Baseline, *, allowed_duplicates: int,
                       label: str) -> list[PushedRecord]:
    """``completeness`` of everything that arrived since ``base``; those records, for further checks."""
    headend = dut.upstream.headend
    recs = records(headend.after(base.mark))
    completeness(check, recs, since_seq=base.last.seq, allowed_duplicates=allowed_duplicates, label=label,
                 delivered_before={r.seq for r in records(headend.before(base.mark))})
    return recs
