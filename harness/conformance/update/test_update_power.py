"""cl. 70 power loss during a software update: a cut during the transfer, during the install and
during the activation (before it is confirmed) each leaves the device running a valid version — the one
it ran or the one it was given — with no update stuck half-way, and a valid update works afterwards.

When "during" is: the harness cannot see inside a device, so it cuts at the moments it controls —
right after the first chunk of a multi-chunk transfer, right after Install returns (a device may
answer before the slot is written; the simulator does, see docs/opcua.md), right after Activate
returns (before Confirm). Each measurement notes the state the device showed at the cut."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from harness.conformance.cleanup import restoring
from harness.conformance.power import power_switch
from harness.conformance.update.steps import IN_PROGRESS, SETTLED, Updater, VendorImage
from harness.reporting.texts import Msg

pytestmark = pytest.mark.dut_kind("controller")


def _into_transfer(up: Updater, image: VendorImage) -> str:
    chunks = up.steps.transfer_chunks(image.data)
    sent, total = next(chunks)
    chunks.close()
    if sent < total:
        return Msg("cut after the first chunk ({sent} of {total} bytes)", sent=sent, total=total)
    return Msg("the image fits one chunk ({total} bytes): cut right after it", total=total)


def _into_install(up: Updater, image: VendorImage) -> str:
    up.steps.transfer(image.data)
    up.steps.install()
    return Msg("cut right after Install returned (state {state})", state=up.state_or_away())


def _into_activation(up: Updater, image: VendorImage) -> str:
    up.steps.transfer(image.data)
    up.steps.install()
    up.reach(("Installed",), f"install of {image.version}")
    up.steps.activate()
    return Msg("cut right after Activate returned, not confirmed (state {state})", state=up.state_or_away())


CUTS: tuple[tuple[str, Callable[[Updater, VendorImage], str]], ...] = (
    ("transfer", _into_transfer), ("install", _into_install), ("activation", _into_activation))


@pytest.mark.destructive
@pytest.mark.check("KZ-70-06", "a power cut during transfer, during install and during activation each leaves a "
                   "valid version running and no update stuck half-way; a valid update works afterwards")
def test_power_cut_during_update(dut, check):
    up = Updater(dut)
    power = power_switch(dut)
    new = up.image("next")
    valid = sorted({up.original, new.version})
    off_s = dut.spec.power.off_time_s if dut.spec.power else 0.0
    settle_s = up.spec.health_check_s + up.step_s  # a trial may be rolled back at power-up, within health_check_s
    with restoring(up.return_to):
        for step, into in CUTS:
            when = into(up, new)
            _, _, ready = power.cut(off_s)
            state = up.steps.wait_state(SETTLED, settle_s)
            running = up.steps.running_version()
            check.measure(Msg("version after a power cut during {step}", step=step), running, passed=running in valid,
                          limit=Msg.joined(" | ", valid), note=Msg("{when}; answering {ready:.1f} s after power-on",
                                                             when=when, ready=ready))
            check.measure(Msg("update state after a power cut during {step}", step=step), state or up.state_or_away(),
                          passed=state is not None, limit=Msg("not {items} within {settle_s:g} s",
                                                              items=' / '.join(IN_PROGRESS), settle_s=settle_s))
            up.return_to()
        seconds = up.update_to(new)
        check.equal(Msg("running version after a valid update following the cuts"), up.steps.running_version(),
                    new.version, note=Msg("transfer to confirm in {seconds:.2f} s", seconds=seconds))
    check.require()
