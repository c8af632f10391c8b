"""What the DLMS protocol and access-control checks share: the profile's ``dlms:`` section or NotApplicable,
and one association opened for a check, closed after it whatever happens."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from harness.reporting.texts import Msg
from harness.verdicts import Inconclusive, NotApplicable

NONE = "none"  # an association's authentication or security policy when it has none (the public client)


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



def mechanism_absent(dlms: Any, check: Any, what: Msg) -> None:
    """A check of one security mechanism (LLS, HLS-GMAC, ciphering) on a meter whose profile offers none of it.

    Why N/A and not INCONCLUSIVE: cl. 94/78 ask that the meter be protected against unauthorised access; they
    name no mechanism. A profile declares which associations the meter has and how each authenticates and
    protects its APDUs, so a mechanism it does not list is a capability declared absent, and the clause allows
    that absence *while another association authenticates its client*: an IDIS meter has no password
    association, a SPODES one may have no HLS, and each is judged by the checks of what it has (KZ-94-04 LLS,
    KZ-94-07 HLS-GMAC, KZ-94-08/09 ciphering — ciphering is confidentiality of the channel, cl. 82, not access).
    Calling such a meter INCONCLUSIVE would leave cl. 94 undecidable for a meter that is protected.
    A meter none of whose associations authenticates anybody has no protection the clause could accept: a FAIL
    (DESIGN: a capability the Rules require and the profile does not declare is a FAIL, never N/A)."""
    authenticating = sorted(n for n, a in dlms.associations.items() if a.authentication != NONE)
    if authenticating:
        raise NotApplicable(Msg("the profile declares no {what} association; its clients authenticate on {roles} "
                                "instead, judged by the checks of that mechanism", what=what,
                                roles=", ".join(authenticating)))
    check.measure(Msg("associations that authenticate their client"), Msg("none (every one is public)"),
                  passed=False, limit=Msg("at least one: cl. 94 requires protection against unauthorised access"))
    check.require()
