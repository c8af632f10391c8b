"""How much of a bounded campaign was actually sent: planned vs sent as a measurement, and a shortfall that
keeps a robustness check from passing.

Every campaign is bounded in time (``robustness.max_duration_s``) as well as in count; on a slow device, or a
slow line, the time bound can end a campaign long before its planned cases are sent — and a device that has
seen half the fuzz cases has not been shown to survive them. Below the rig's ``robustness.min_coverage_pct``
the check is INCONCLUSIVE, naming the setting to raise. A campaign that stopped because the device failed
(the monitor lost it, it refused connections) is judged on that failure instead; one the device cut short by
closing the connections it was stormed on is the device's answer, which the monitor judges.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from harness.reporting.texts import Msg


@dataclass
class Coverage:
    """The shortfalls of one check's campaigns, each with what to change on the rig."""

    settings: Any  # the rig's robustness
    shortfalls: list[Msg] = field(default_factory=list)

    def record(self, check: Any, what: str, planned: int, sent: int, campaign: Any, note: str = "") -> None:
        """Measure ``sent`` of ``planned``; a shortfall counts when the campaign's time bound ran out."""
        pct = 100.0 * sent / planned if planned else 100.0
        timed_out = time.perf_counter() >= campaign.deadline
        minimum = self.settings.min_coverage_pct
        why = ""
        if sent < planned:
            why = Msg("the campaign's time bound ran out") if timed_out else \
                Msg("stopped early (see the other measurements)")
        check.measure(Msg("coverage: {what} sent of planned", what=what), round(pct, 1), unit="%", passed=True,
                      limit=Msg("≥ {minimum:g} % (robustness.min_coverage_pct), else INCONCLUSIVE", minimum=minimum),
                      note=Msg("{sent} of {planned}{why}{note}", sent=sent, planned=planned,
                               why=Msg("; {why}", why=why) if why else "", note=Msg("; {note}",
                                                                                    note=note) if note else ""))
        if pct < minimum and timed_out:
            need = planned / self.settings.rate_per_s
            keys = Msg("robustness.max_duration_s and robustness.rate_per_s") \
                if need > self.settings.max_duration_s else "robustness.max_duration_s"
            self.shortfalls.append(
                Msg("{what}: {sent} of {planned} sent ({pct:.0f} % < robustness.min_coverage_pct {minimum:g} %) before "
                    "the time bound robustness.max_duration_s = {max_duration_s:g} s ran out — raise {keys} (or plan "
                    "fewer)", what=what, sent=sent, planned=planned, pct=pct, minimum=minimum,
                    max_duration_s=self.settings.max_duration_s, keys=keys))

    def verdict(self, check: Any) -> Msg | None:
        """The INCONCLUSIVE reason when a campaign fell short and nothing failed (a failure stands on its own)."""
        if check.failures or not self.shortfalls:
            return None
        return Msg("coverage too low: {shortfalls}", shortfalls=Msg.joined("; ", self.shortfalls))
