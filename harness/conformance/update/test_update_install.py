"""cl. 70, what a device installs: the vendor's valid signed image (reported and logged with the user),
never a forged one (unsigned, wrongly signed, truncated, corrupted — made by the ``firmware`` fault
injector from the vendor's image), never an image below the declared minimum version (whatever the
profile's ``below_min_version`` says: cl. 70 asks for a *secure* update whose way back is the rollback to
the previous version, and a version below the vendor's own minimum is one it declared unfit), and a newer
image it has received announced as a new version."""

from __future__ import annotations

import pytest

from harness.conformance.cleanup import restoring
from harness.conformance.update.steps import RESTING, AuditMark, Updater, names_version, wait_for
from harness.events import AuditKind
from harness.firmware.image import version_key
from harness.reporting.texts import Msg
from harness.verdicts import Inconclusive

# Installing firmware — forged images included, which a faulty device might accept — is destructive (DESIGN.md):
# these checks run only where the rig allows destructive tests.
pytestmark = [pytest.mark.dut_kind("controller"), pytest.mark.destructive]


@pytest.mark.check("KZ-70-01", "a valid signed image transfers, installs, activates and is confirmed; the new "
                   "version is reported and the update is logged with the user")
def test_valid_image_installs(dut, check):
    up = Updater(dut)
    new = up.image("next")
    mark = AuditMark(dut.device)
    with restoring(up.return_to):
        seconds = up.update_to(new, check)
        check.equal(Msg("running version after the update"), up.steps.running_version(), new.version)
        if up.spec.previous_version is None:
            check.measure(Msg("previous version shown"), Msg("not declared"), passed=False, limit=Msg("= {original}",
                                                                                            original=up.original),
                          note=Msg("the profile declares no update.previous_version node: which version a rollback "
                                   "returns to is not shown"))
        else:
            check.equal(Msg("previous version shown"), up.steps.previous_version(), up.original)
        check.measure(Msg("time for the whole update"), round(seconds, 3), passed=True, unit="s",
                      note=Msg("{n} bytes in chunks of {chunk_bytes}; transfer to confirm", n=len(new.data),
                               chunk_bytes=up.spec.chunk_bytes))
        logged = [e for e in mark.entries(AuditKind.FIRMWARE_UPDATE) if names_version(e, new.version)]
    check.at_least(Msg("firmware_update entries naming {version}", version=new.version), len(logged), 1)
    mine = [e for e in logged if e.user and (up.account is None or e.user == up.account)]
    check.at_least(Msg("… of them with the harness's account ({value}) as user",
                       value=up.account or 'any user'), len(mine), 1,
                   note=Msg("users logged: {sorted}", sorted=sorted({str(e.user) for e in logged})))
    check.require()


def _forgeries_refused(dut, check, kinds: tuple[str, ...]) -> None:
    """Offer each forgery of the rig's ``next`` image: refused, version unchanged, state at rest, logged."""
    up = Updater(dut)
    source = up.image("next")
    with restoring(up.return_to):
        for kind in kinds:
            forged = up.forger.forge_file(kind, source.path)  # kept as evidence, recorded in the fault log
            mark = AuditMark(dut.device)
            offer = up.offer(forged.read_bytes())
            check.equal(Msg("{kind} image refused",
                            kind=kind), offer.refused, True, note=Msg("{name}: {describe}", name=forged.name,
                                                                               describe=offer.describe()))
            check.equal(Msg("running version after the {kind} image",
                            kind=kind), up.steps.running_version(), up.original)
            check.measure(Msg("update state after the {kind} image",
                              kind=kind), offer.state, passed=offer.state in RESTING,
                          limit=" | ".join(RESTING))
            check.at_least(Msg("security events logged for the {kind} image", kind=kind),
                           len(mark.entries(AuditKind.SECURITY_EVENT)), 1)
    check.require()


@pytest.mark.check("KZ-70-02", "unsigned and wrongly signed images are refused: the running version is unchanged "
                   "and a security event is logged")
def test_unsigned_and_wrongly_signed_refused(dut, check):
    _forgeries_refused(dut, check, ("unsigned", "wrongly_signed"))


@pytest.mark.check("KZ-70-03", "truncated and corrupted images are refused: the running version is unchanged and "
                   "a security event is logged")
def test_truncated_and_corrupted_refused(dut, check):
    _forgeries_refused(dut, check, ("truncated", "corrupted"))


@pytest.mark.check("KZ-70-07", "an image below the declared minimum version is refused, the running version "
                   "unchanged (a downgrade is tried whatever the profile declares)")
def test_below_minimum_version(dut, check):
    up = Updater(dut)
    low = up.spec.min_version
    if low is None:
        check.measure(Msg("declared minimum version"), Msg("none"), passed=False,
                      note=Msg("the profile declares no update.min_version: nothing keeps a known-vulnerable older "
                               "version from being installed"))
        check.require()
    old = up.image("below_min")
    if version_key(old.version) >= version_key(low):
        raise Inconclusive(Msg("the rig's below_min image is version {version}, not below the declared minimum "
                               "{low} (duts.{name}.firmware.below_min)", version=old.version, low=low, name=dut.name))
    # A profile's `below_min_version: allow` does not make the downgrade acceptable: the Rules' way back (cl. 70)
    # is the rollback to the previous version (KZ-70-05), and the minimum is the vendor's own floor — a device
    # that installs below it can be walked back to a version known to be unfit. The attack is tried either way.
    policy = up.spec.below_min_version
    with restoring(up.return_to):
        offer = up.offer(old.data)
        check.equal(Msg("{version} (below {low}) refused", version=old.version, low=low), offer.refused, True,
                    note=Msg("declared below_min_version: {policy} — not accepted as a reason: a downgrade below the "
                             "minimum must be refused; {offer}", policy=policy, offer=offer.describe())
                    if policy == "allow" else Msg("declared below_min_version: {policy}; {offer}", policy=policy,
                                                  offer=offer.describe()))
        check.equal(Msg("running version afterwards"), up.steps.running_version(), up.original)
    check.require()


@pytest.mark.check("KZ-70-08", "a newer valid image received by the device is indicated as a new version available")
def test_new_version_indicated(dut, check):
    up = Updater(dut)
    if up.spec.available_version is None:
        check.measure(Msg("new-version indication"), Msg("not declared"), passed=False,
                      note=Msg("the profile declares no update.available_version node; cl. 70 requires "
                               "notification of new versions"))
        check.require()
    new = up.image("next")
    if version_key(new.version) <= version_key(up.original):
        raise Inconclusive(Msg("the rig's next image {version} is not newer than the running {original} "
                               "(duts.{name}.firmware.next)", version=new.version, original=up.original, name=dut.name))
    before = up.steps.available_version()
    with restoring(up.return_to):
        up.steps.transfer(new.data)
        shown, took = wait_for(up.steps.available_version, lambda v: v == new.version, up.step_s)
        check.equal(Msg("new version indicated after the transfer"), shown, new.version,
                    note=Msg("before the transfer: {before}; {shown}", before=before or Msg("nothing"),
                             shown=Msg("shown {took:.2f} s after it", took=took) if took is not None
                             else Msg("not within {step_s:g} s", step_s=up.step_s)))
        check.equal(Msg("running version (transferred, not installed)"), up.steps.running_version(), up.original)
    check.require()
