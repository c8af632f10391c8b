"""What the DLMS protocol and access-control checks share: the profile's ``dlms:`` section or NotApplicable,
and one association opened for a check, closed after it whatever happens."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from harness.reporting.texts import Msg
from harness.verdicts import Inconclusive, NotApplicable


def dlms_of(dut: Any) -> Any:
    """The profile's ``dlms:`` section; NotApplicable for a device of another protocol."""
    if dut.profile.dlms is None:
        raise NotApplicable(Msg("{name} speaks {protocol}, not DLMS/COSEM: the DLMS checks do not apply",
                                name=dut.name, protocol=dut.profile.protocol))
    return dut.profile.dlms


def dlms_device(dut: Any) -> Any:
    """The DUT's driver if it can open associations of its own choosing (the ``dlms`` driver can)."""
    device = dut.device
    if not hasattr(device, "open_link"):
        raise Inconclusive(Msg("the {driver} driver cannot open DLMS associations for negative checks",
                               driver=type(device).__name__))
    return device


@contextlib.contextmanager
def association(device: Any, role: str, **how: Any) -> Iterator[Any]:
    """An association as ``role`` for one check (AssociationRefused propagates), released at the end."""
    link = device.open_link(role, **how)
    try:
        yield link
    finally:
        link.close()

