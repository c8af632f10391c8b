"""cl. 94 / 78 for DLMS/COSEM meters: who may do what is decided by the association, so the checks open the
profile's associations themselves. An LLS association refuses a wrong password at the AARQ (IEC 62443-3-3
SR 1.1 / 1.2, identification and authentication); an association the profile does not give the right to set
the clock — the public client first of all — has its SET refused and the clock stays as it was (SR 2.1,
authorization enforcement). Passwords come from the rig's credentials; the wrong one is made from the right one
and neither is ever written to the evidence (the transcript shows them redacted)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from harness.conformance.cleanup import restoring
from harness.conformance.dlms_checks import association, dlms_device, dlms_of, mechanism_absent
from harness.devices.dlms import dar_name, encode_value
from harness.devices.dlms_link import AssociationRefused
from harness.quantities import EnergyRegister
from harness.reporting.texts import Msg
from harness.verdicts import Inconclusive

pytestmark = pytest.mark.dut_kind("electricity_meter", "heat_meter")

CLOCK_SHIFT = timedelta(hours=3, minutes=7)  # as KZ-94-02 and KZ-95-09 shift it: unmistakable, not a DST hour
CLOCK_KEPT_S = 30.0  # the clock may move this far from its course while we look (reads and a SET in between)
DIAGNOSTICS = {13: "authentication-failure"}


def _lls(dlms) -> list[str]:
    return [name for name, a in dlms.associations.items() if a.authentication == "lls"]


@pytest.mark.check("KZ-94-04", "every LLS association refuses a wrong password at the association request (and an "
                   "empty one); the rig's password is accepted [SR 1.1, SR 1.2]", also=("78",))
def test_lls_refuses_wrong_password(dut, check):
    dlms = dlms_of(dut)
    device = dlms_device(dut)
    roles = _lls(dlms)
    if not roles:
        mechanism_absent(dlms, check, Msg("LLS (password)"))
    for role in roles:
        try:
            with association(device, role):
                pass
        except AssociationRefused as exc:
            raise Inconclusive(Msg("association {role!r} refuses the rig's own password ({exc}): is "
                                   "credentials.{credential} this meter's?", role=role, exc=exc,
                                   credential=dlms.associations[role].credential)) from None
        check.measure(Msg("{role}: association with the rig's password", role=role), Msg("accepted"), passed=True)
        for label, password in ((Msg("a wrong password of the same length"), device.wrong_password(role)),
                                (Msg("an empty password"), b"")):
            try:
                with association(device, role, password=password):
                    answer, refused = Msg("accepted"), False
            except AssociationRefused as exc:
                answer, refused = Msg("rejected ({diagnostic})", diagnostic=DIAGNOSTICS.get(
                    exc.code, Msg("diagnostic {code}", code=exc.code))), True
            check.measure(Msg("{role}: association with {label}", role=role, label=label), answer, passed=refused,
                          limit=Msg("rejected"))
    check.require()


@pytest.mark.check("KZ-94-05", "an association without the right to set the clock (the public client first of "
                   "all) has its SET of the clock refused, and the clock keeps its time [SR 2.1]", also=("78",))
def test_clock_set_needs_the_right(dut, check):
    dlms = dlms_of(dut)
    device = dlms_device(dut)
    if dlms.clock is None:
        raise Inconclusive(Msg("the profile declares no dlms.clock"))
    public = dlms.public()
    roles = sorted((r for r, a in dlms.associations.items() if "clock" not in a.may_set), key=lambda r: r != public)
    if not roles:
        raise Inconclusive(Msg("every declared association may set the clock: no association to refuse it"))
    changed: list[bool] = []

    def put_back() -> None:
        if changed:
            device.set_clock(datetime.now(UTC))

    with restoring(put_back):
        for role in roles:
            before = device.read_clock()
            try:
                with association(device, role) as link:
                    code = device.set_on(link, device.attribute(8, dlms.clock.obis, 2),
                                         device.clock_set_data(before.value + CLOCK_SHIFT))
            except AssociationRefused as exc:
                raise Inconclusive(Msg("could not associate as {role} to try it: {exc}", role=role, exc=exc)) from None
            after = device.read_clock()
            course = before.value + timedelta(seconds=after.t_received - before.t_sent)
            moved = abs((after.value - course).total_seconds())
            changed.append(moved > CLOCK_KEPT_S)
            check.measure(Msg("{role}: SET of the clock {shift} ahead", role=role, shift=CLOCK_SHIFT),
                          dar_name(code) if code else Msg("success"), passed=code != 0,
                          limit=Msg("refused (read-write-denied)"))
            check.at_most(Msg("{role}: clock moved off its course by the SET", role=role), round(moved, 2),
                          CLOCK_KEPT_S, unit="s")
    check.require()


VISIBLE_STEPS = 1000  # KZ-94-06 writes this many register steps above the count read: the load adds far less


@pytest.mark.check("KZ-94-06", "no association can SET an energy register: each SET of an energy total is refused "
                   "and the register keeps its count [SR 3.1]", also=("78",))
def test_energy_registers_not_settable(dut, check):
    dlms = dlms_of(dut)
    device = dlms_device(dut)
    totals = [(q, o) for q, o in dlms.points.items()
              if (r := EnergyRegister.parse(q)) is not None and r.tariff is None and o.class_id == 3]
    if not totals:
        raise Inconclusive(Msg("the profile declares no energy total to try a SET on"))
    for role in dlms.associations:
        try:
            with association(device, role) as link:
                for name, obj in totals:
                    attribute = device.attribute(obj.class_id, obj.obis, obj.attribute)
                    before = device.get_on(link, [attribute])[0]
                    if not isinstance(before, int) or isinstance(before, bool):
                        check.measure(Msg("{role}: {name} read before the SET", role=role, name=name), str(before),
                                      passed=False, limit=Msg("a count"))
                        continue
                    code = device.set_on(link, attribute, encode_value(obj.type, before + VISIBLE_STEPS))
                    after = device.get_on(link, [attribute])[0]
                    change = after - before if isinstance(after, int) else None
                    check.measure(Msg("{role}: SET of {name} to its count + {steps}", role=role, name=name,
                                      steps=VISIBLE_STEPS),
                                  dar_name(code) if code else Msg("success"), passed=code != 0, limit=Msg("refused"))
                    check.measure(Msg("{role}: {name} change read back", role=role, name=name), change,
                                  passed=change is not None and change < VISIBLE_STEPS // 2,
                                  limit=Msg("< {steps} steps (what the load adds meanwhile)", steps=VISIBLE_STEPS // 2))
                    if change is not None and change >= VISIBLE_STEPS // 2:  # taken: put the count back
                        device.set_on(link, attribute, encode_value(obj.type, before))
        except AssociationRefused as exc:
            raise Inconclusive(Msg("could not associate as {role} to try it: {exc}", role=role, exc=exc)) from None
    check.require()
