"""cl. 68 (and 81) on a DLMS/COSEM meter: the xDLMS services answer as IEC 62056-5-3 says. A GET of an object
the meter does not have gives the Data-Access-Result object-undefined, whichever association asks — a
meter that answers with data for it lets a head-end read values that mean nothing as if they were
measurements. The unknown object is made up by the harness (never one the profile declares)."""

from __future__ import annotations

import random

import pytest

from harness.conformance.dlms_checks import association, dlms_device, dlms_of
from harness.devices.api import DeviceError, DeviceRefused
from harness.quantities import EnergyRegister
from harness.reporting.texts import Msg
from harness.verdicts import Inconclusive

pytestmark = pytest.mark.dut_kind("electricity_meter", "heat_meter")  # the meters a DLMS profile describes

ALSO = ("81",)
OBJECT_UNDEFINED = 4


def _undefined(result: object) -> bool:
    return getattr(result, "code", None) == OBJECT_UNDEFINED


def _shown(result: object) -> str:
    return str(result) if hasattr(result, "code") else Msg("data {value!r}", value=result)

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
    raise Inconclusive(Msg("the profile declares every object the harness could make up"))


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
                check.measure(Msg("GET {obis} (class 3, attribute 2) as {role}", obis=unknown, role=role), _shown(got),
                              passed=_undefined(got), limit=Msg("object-undefined"))
                pair = device.get_on(link, [device.attribute(known.class_id, known.obis, known.attribute),
                                            device.attribute(3, unknown, 2)])
                check.measure(Msg("GET-with-list of {known} and {obis} as {role}", known=known_name, obis=unknown,
                                  role=role),
                              Msg("{known}: {first}; {obis}: {second}", known=known_name, first=_shown(pair[0]),
                                  obis=unknown, second=_shown(pair[1])),
                              passed=_undefined(pair[1]) and not hasattr(pair[0], "code"),
                              limit=Msg("{known} answered with data, {obis} object-undefined", known=known_name,
                                        obis=unknown))
        except DeviceRefused as exc:
            raise Inconclusive(Msg("could not associate as {role} to try it: {exc}", role=role, exc=exc)) from None
    check.require()


DIAG_CONTEXT = 2  # application-context-name-not-supported
DIAG_MECHANISM = {11: "authentication-mechanism-name-not-recognised", 12: "authentication-mechanism-name-required"}
HLS_GMAC = 5  # a mechanism the association tried does not declare (another association may)
BLOCK_PDU = 64  # KZ-68-14 proposes this client max receive PDU, so that a list of registers comes in blocks


@pytest.mark.check("KZ-68-13", "an AARQ with an application context or an authentication mechanism the "
                   "association does not offer is rejected with the diagnostic that names it", also=ALSO)
def test_unoffered_context_and_mechanism_rejected(dut, check):
    dlms = dlms_of(dut)
    device = dlms_device(dut)
    role = dlms.public() or dlms.reads_with
    if dlms.associations[role].security != "none" or dlms.associations[role].authentication == "hls_gmac":
        raise Inconclusive(Msg("association {role} offers ciphering and HLS itself: no unoffered context to ask for",
                               role=role))
    diag = device.try_association(role, ciphered_context=True)
    shown = Msg("accepted") if diag is None else Msg("diagnostic {diag}", diag=diag)
    check.measure(Msg("{role}: AARQ for LN referencing with ciphering", role=role), shown, passed=diag == DIAG_CONTEXT,
                  limit=Msg("rejected: application-context-name-not-supported (2)"),
                  note=Msg("association {role} is declared without ciphering", role=role))
    diag = device.try_association(role, mechanism=HLS_GMAC)
    check.measure(Msg("{role}: AARQ with mechanism HLS-GMAC ({mechanism})", role=role, mechanism=HLS_GMAC),
                  Msg("accepted") if diag is None else DIAG_MECHANISM.get(diag, Msg("diagnostic {diag}", diag=diag)),
                  passed=diag in DIAG_MECHANISM,
                  limit=Msg("{one} or {other}", one=DIAG_MECHANISM[11], other=DIAG_MECHANISM[12]),
                  note=Msg("the association declares {authentication}",
                           authentication=dlms.associations[role].authentication))
    check.require()


@pytest.mark.check("KZ-68-14", "the client's max receive PDU is honoured: a GET answer longer than it comes in "
                   "blocks, none longer than the PDU, that reassemble exactly (the same values as read whole, each "
                   "energy total equal to the sum of its tariffs)", also=ALSO)
def test_block_transfer_reassembles(dut, check):
    dlms = dlms_of(dut)
    device = dlms_device(dut)
    role = dlms.reads_with
    registers = [(q, o) for q, o in dlms.points.items() if o.class_id == 3]
    strings = [(q, o) for q, o in dlms.points.items() if o.is_string]
    if not registers:
        raise Inconclusive(Msg("the profile declares no class 3 register to read in blocks"))
    with association(device, role, receive_pdu=BLOCK_PDU) as link:
        results: dict[str, object] = {}
        try:
            for batch in device.batches(registers + strings):
                got = device.get_on(link, [device.attribute(o.class_id, o.obis, o.attribute) for _, o in batch])
                results.update(zip((q for q, _ in batch), got, strict=True))
        except (DeviceRefused, DeviceError) as exc:
            check.measure(Msg("reassembled answer"), Msg("unreadable: {exc}", exc=exc), passed=False,
                          limit=Msg("every value"))
            check.require()
        blocks, longest = link.exchanges["get-next"], link.longest_answer
    check.at_most(Msg("longest APDU received"), longest, BLOCK_PDU, unit="bytes",
                  note=Msg("the AARQ proposed a client max receive PDU of {pdu} bytes", pdu=BLOCK_PDU))
    if not blocks and longest <= BLOCK_PDU:
        raise Inconclusive(Msg("no answer was longer than {pdu} bytes: block transfer was not exercised",
                               pdu=BLOCK_PDU))
    check.measure(Msg("blocks asked for (GET-request-next)"), blocks, passed=True)
    refused = [q for q, v in results.items() if hasattr(v, "code")]
    check.measure(Msg("values in the reassembled answers"), len(results) - len(refused), passed=not refused,
                  limit=Msg("{n} (every one requested)", n=len(results)),
                  note=Msg("refused: {names}", names=", ".join(refused)) if refused else "")
    whole = device.read_many([q for q, _ in strings])
    for q, _ in strings:
        check.equal(Msg("{name} in blocks vs whole", name=q), _text(results.get(q)), str(whole[q].value))
    for total in (q for q, _ in registers if (r := EnergyRegister.parse(q)) is not None and r.tariff is None):
        channel = EnergyRegister.parse(total).channel  # type: ignore[union-attr]
        tariffs = [q for q, _ in registers if (r := EnergyRegister.parse(q)) is not None and r.channel == channel
                   and r.tariff is not None]
        if tariffs and all(isinstance(results.get(t), int) for t in [total, *tariffs]):
            check.equal(Msg("{total} - sum of its tariffs (one instant, in blocks)", total=total),
                        results[total] - sum(results[t] for t in tariffs), 0)  # type: ignore[operator]
    check.require()


def _text(value: object) -> str:
    return value.decode("ascii", "replace") if isinstance(value, bytes | bytearray) else str(value)
