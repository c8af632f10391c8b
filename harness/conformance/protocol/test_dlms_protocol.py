"""cl. 68 (and 81) on a DLMS/COSEM meter: the xDLMS services answer as IEC 62056-5-3 says. A GET of an object
the meter does not have gives the Data-Access-Result object-undefined, whichever association asks — a
meter that answers with data for it lets a head-end read values that mean nothing as if they were
measurements. The unknown object is made up by the harness (never one the profile declares)."""

from __future__ import annotations

import random

import pytest

from harness.conformance.dlms_checks import association, dlms_device, dlms_of
from harness.devices.api import DeviceRefused
from harness.verdicts import Inconclusive

ALSO = ("81",)
OBJECT_UNDEFINED = 4


def _undefined(result: object) -> bool:
    return getattr(result, "code", None) == OBJECT_UNDEFINED


def _shown(result: object) -> str:
    return str(result) if hasattr(result, "code") else f"data {result!r}"

# A-group 1 (electricity), C-group 199: the top of the manufacturer-specific range 128..199 of IEC 62056-6-1,
# E and the code's channel drawn from the run's seed; one the profile declares is skipped.
UNKNOWN_C = 199


def unknown_object(dlms, seed: int) -> str:
    declared = {o.obis for o in (*dlms.points.values(), *dlms.settings.values())} | (
        {dlms.clock.obis} if dlms.clock else set())
    rng = random.Random(f"dlms unknown object {seed}")
    for _ in range(100):
        code = f"1.{rng.randint(1, 64)}.{UNKNOWN_C}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.255"
        if code not in declared:
            return code
    raise Inconclusive("the profile declares every object the harness could make up")


@pytest.mark.check("KZ-68-12", "a GET of an object the meter does not have gives object-undefined, for every "
                   "association (and a list with it in answers the declared objects beside it)", also=ALSO)
def test_unknown_object_is_undefined(dut, check):
    dlms = dlms_of(dut)
    device = dlms_device(dut)
    unknown = unknown_object(dlms, dut.seed)
    known_name, known = next(iter(dlms.points.items()))
    for role in dlms.associations:
        try:
            with association(device, role) as link:
                got = device.get_on(link, [device.attribute(3, unknown, 2)])[0]
                check.measure(f"GET {unknown} (class 3, attribute 2) as {role}", _shown(got),
                              passed=_undefined(got), limit="object-undefined")
                pair = device.get_on(link, [device.attribute(known.class_id, known.obis, known.attribute),
                                            device.attribute(3, unknown, 2)])
                check.measure(f"GET-with-list of {known_name} and {unknown} as {role}",
                              f"{known_name}: {_shown(pair[0])}; {unknown}: {_shown(pair[1])}",
                              passed=_undefined(pair[1]) and not hasattr(pair[0], "code"),
                              limit=f"{known_name} answered with data, {unknown} object-undefined")
        except DeviceRefused as exc:
            raise Inconclusive(f"could not associate as {role} to try it: {exc}") from None
    check.require()
