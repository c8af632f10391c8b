"""Protocol probes classified by what they could change on the device they are sent to.

A non-destructive suite changes nothing on a device but declared test values. Reads change nothing; a write
changes nothing only where the profile says nothing can be changed — an address outside the declared
``address_space``, or a writable point given its own value back. Anything else a probe might make a careless
device store is *destructive*: a write to an address the profile does not declare (it may hold a vendor
setting, a bus address, a CT ratio), or a write whose quantity and byte count disagree aimed at a writable
point (a device that trusts the byte count stores the data words). Such probes are sent only on a rig with
``allow_destructive: true``; elsewhere they are recorded as not sent, with the reason, and the check judges
what remained — or is INCONCLUSIVE when nothing did.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.conformance.wire.modbus_raw import Answer, RawModbus
from harness.reporting.texts import Msg
from harness.verdicts import Inconclusive

NOT_SENT = "not sent"


@dataclass(frozen=True)
class Probe:
    """One request and the exception the specification asks for; ``risk`` says why it could change the
    device (None: it cannot)."""

    label: str
    pdu: bytes
    exception: int
    risk: str | None = None
    why: str = ""  # why this address was chosen, for the evidence


def is_exception(answer: Answer, fc: int, code: int) -> bool:
    return answer.function_code == (fc | 0x80) & 0xFF and answer.exception == code


@dataclass
class ProbeRun:
    """Sends a check's probes — the destructive ones only where the rig allows them — and measures each."""

    check: Any
    raw: RawModbus
    allow_destructive: bool
    held_back: list[Probe] = field(default_factory=list)

    def expect(self, probe: Probe) -> Answer | None:
        if probe.risk is not None and not self.allow_destructive:
            self.held_back.append(probe)
            return None
        answer = self.raw.request(probe.pdu, what=probe.label)
        fc = probe.pdu[0]
        note = Msg("sent {hex}{why}{risk}", hex=answer.sent.hex(),
                   why=Msg("; address: {why}", why=probe.why) if probe.why else "",
                   risk=Msg("; destructive (the rig allows it)") if probe.risk is not None else "")
        self.check.measure(probe.label, answer.describe(), passed=is_exception(answer, fc, probe.exception),
                           limit=Msg("exception {exception:02X} (function code 0x{value:02X})",
                                     exception=probe.exception, value=(fc | 0x80) & 0xFF),
                           note=note)
        return answer

    def conclude(self, nothing: str) -> None:
        """Record what was held back and why; INCONCLUSIVE when nothing was measured (``nothing`` says why no
        probe applied at all), else the measurements decide."""
        self.raw.close()
        judged = [m for m in self.check.measurements if m.measured != NOT_SENT]
        if not judged:
            if self.held_back:
                held = Msg.joined("; ", (Msg("{label} — {risk}", label=p.label, risk=p.risk) for p in self.held_back))
                raise Inconclusive(Msg("nothing non-destructive remained to judge on this rig (allow_destructive: "
                                       "false): {probes}", probes=held))
            raise Inconclusive(nothing)
        for probe in self.held_back:
            self.check.measure(probe.label, NOT_SENT, passed=True, limit=Msg("N/A: destructive on this rig"),
                               note=Msg("{risk}; sent only on a rig with allow_destructive: true", risk=probe.risk))
        self.check.require()
