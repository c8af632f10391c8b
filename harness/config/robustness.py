"""The rig's bounds on the robustness suite (cl. 49, IEC 62443-3-3 SR 3.5 / SR 7.1) and where it may send.

Every campaign is bounded in count, rate and time by these numbers. The defaults are small so that CI stays
fast and still reaches what a campaign must reach; labs raise them (ISASecure CRT runs use hundreds of
thousands of cases). Fuzzing sends garbage on purpose, so it goes only where the harness knows there is a
DUT of its own: loopback, a network namespace it made, or an address the rig lists in ``lab_allow_list``.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated

from pydantic import AfterValidator, Field

from harness.config.modbus_types import Strict


class Robustness(Strict):
    """Sizes of the robustness campaigns (rig ``robustness:``)."""

    fuzz_cases: int = Field(200, ge=1, le=10_000_000, description="malformed and fuzzed frames per campaign")
    rate_per_s: float = Field(5000.0, gt=0, le=1_000_000, description="most frames or requests the harness "
                              "sends per second in any campaign")
    max_duration_s: float = Field(20.0, gt=0, le=7 * 86400, description="wall-time bound of one campaign")
    case_timeout_s: float = Field(0.02, gt=0, le=10, description="how long a fuzz case waits for an answer "
                                  "(answers are not required; a crash is seen by the monitor)")
    flood_requests: int = Field(1500, ge=1, le=100_000_000, description="valid requests in the request storm")
    flood_connections: int = Field(4, ge=1, le=256, description="connections the request storm is spread over")
    connections: int = Field(16, ge=1, le=10_000, description="connections in a storm on a DUT that declares no "
                             "limit (`max_connections`)")
    past_limit: int = Field(4, ge=0, le=10_000, description="connections opened beyond a declared limit")
    half_open: int = Field(4, ge=1, le=10_000, description="half-open connections held on a DUT that declares "
                           "no limit (else the limit less the harness's own)")
    hold_s: float = Field(1.0, gt=0, le=86400, description="how long storms and half-open connections are held")
    monitor_interval_s: float = Field(0.05, gt=0, le=60, description="how often the essential function is read "
                                      "while a campaign runs")
    min_coverage_pct: float = Field(90.0, gt=0, le=100, description="share of a campaign's planned cases, requests "
                                    "or connections that must be sent before its time bound runs out; below it the "
                                    "check is INCONCLUSIVE (raise max_duration_s)")


def check_cidrs(values: list[str]) -> list[str]:
    """Every entry a network (``192.0.2.0/24``) or an address; normalised to CIDR text."""
    out = []
    for v in values:
        try:
            out.append(str(ipaddress.ip_network(v, strict=False)))
        except ValueError:
            raise ValueError(f"{v!r} is not an address or network (CIDR), e.g. 192.0.2.10 or 192.0.2.0/24") \
                from None
    return out


CidrList = Annotated[list[str], AfterValidator(check_cidrs)]
