"""Malformed and fuzzed Modbus RTU frames for a DUT on a serial line, reproducibly.

The PDU families are those of Modbus/TCP (``modbus_fuzz``), drawn from the same seed so that a case index
means the same PDU on both transports: scapy's ``fuzz()`` of every request type, count fields around their
limits, PDUs cut short, PDUs with bytes after their end, odd function codes — each framed for the line with
the unit id and a *sound* CRC, so that it reaches the device's handler of that function. The MBAP family has
no meaning on a line; its share goes to what a line has instead: frames with a bad CRC, a sound frame cut
before its CRC, frames longer than the 256 bytes an RTU ADU may have (sound CRC), line noise (random bytes)
and frames for another unit (broadcast 0, 255, a neighbour).
"""

from __future__ import annotations

import random

from harness.conformance.wire.modbus_fuzz import Case, modbus_cases
from harness.conformance.wire.modbus_raw import rtu

MAX_ADU = 256  # Modbus over serial line V1.02, 2.5.1: the largest RTU frame
LINE_FAMILIES = ("bad_crc", "cut_frame", "overlong", "noise", "other_unit")


def rtu_cases(seed: int, count: int, unit: int) -> list[Case]:
    """``count`` RTU cases for a DUT at ``unit``, the same for the same seed."""
    cases = []
    for case in modbus_cases(seed, count, unit):
        pdu = case.frame[7:]  # the MBAP header is computed for every family but ``mbap``: the rest is the PDU
        if case.family != "mbap":
            cases.append(Case(case.index, case.family, f"{case.what} (sound CRC)", rtu(pdu, unit)))
            continue
        rng = random.Random(f"{seed}:rtu:{case.index}")
        family = rng.choice(LINE_FAMILIES)
        if family == "bad_crc":
            frame, what = rtu(pdu, unit, good_crc=False), f"{case.what.split(' under')[0]} with a bad CRC"
        elif family == "cut_frame":
            sound = rtu(pdu, unit)
            cut = rng.randint(1, len(sound) - 1)
            frame, what = sound[:cut], f"a sound frame cut to {cut} of {len(sound)} bytes (no CRC at its end)"
        elif family == "overlong":
            size = rng.randint(MAX_ADU + 1, MAX_ADU + 44)
            padded = pdu + rng.randbytes(max(0, size - 3 - len(pdu)))
            frame, what = rtu(padded, unit), f"a {size}-byte frame (RTU allows {MAX_ADU}), sound CRC"
        elif family == "noise":
            frame = rng.randbytes(rng.randint(1, 64))
            what = f"{len(frame)} bytes of line noise"
        else:
            other = rng.choice((0, 255, unit % 247 + 1))
            frame, what = rtu(pdu, other), f"{case.what.split(' under')[0]} for unit {other}"
        cases.append(Case(case.index, family, what, frame))
    return cases
