"""Which names a profile's points may carry: a canonical quantity, or a vendor point under ``x_``.

A suite asks a device for a quantity by its canonical name (``harness/quantities.py``); a point the
profile declares under any other name is never read. Left unchecked, a misspelt name
(``actve_import_total``) passes ``harness check``, the register is silently ignored and the meter
FAILs a check for a register it has. So a name is either canonical or explicitly the vendor's own
(``x_`` prefix: served, polled, never judged as a quantity), and anything else is a config error
with a did-you-mean suggestion.
"""

from __future__ import annotations

import difflib
import re
from typing import Annotated

from pydantic import AfterValidator

from harness.quantities import canonical_quantities, is_canonical

VENDOR_PREFIX = "x_"
_VENDOR = re.compile(r"^x_[A-Za-z0-9_]+$")
# How close a name must be to a canonical one to be taken for a misspelling of it (difflib ratio):
# `actve_import_total` scores 0.97, `heat_enrgy` 0.95; a controller's own `supply_temperature` 0.76.
TYPO_RATIO = 0.85


def is_vendor(name: str) -> bool:
    """A vendor point: explicitly outside the canonical vocabulary."""
    return bool(_VENDOR.match(name))


def suggestion(name: str, cutoff: float = 0.6) -> str | None:
    """The canonical name ``name`` most likely misspells, or None when none is close."""
    found = difflib.get_close_matches(name, canonical_quantities(), n=1, cutoff=cutoff)
    return found[0] if found else None


def check_point_name(name: str) -> str:
    """A Modbus point name: canonical or ``x_…``; otherwise ValueError saying what was meant."""
    if is_canonical(name) or is_vendor(name):
        return name
    meant = suggestion(name)
    hint = f"; did you mean `{meant}`?" if meant else ""
    raise ValueError(f"`{name}` is not a canonical quantity{hint} (a vendor's own point is named "
                     f"`{VENDOR_PREFIX}{name}`; the canonical names are in harness/quantities.py)")


def check_free_name(name: str) -> str:
    """A name a device may choose itself (a controller's process value or setpoint, which has no
    canonical name): refused only when it is a near miss of a canonical name, i.e. a likely typo."""
    if is_canonical(name) or is_vendor(name):
        return name
    meant = suggestion(name, TYPO_RATIO)
    if meant is not None:
        raise ValueError(f"`{name}` looks like a misspelt `{meant}`: write `{meant}`, or `{VENDOR_PREFIX}{name}` "
                         "for a point of the device's own")
    return name


PointName = Annotated[str, AfterValidator(check_point_name)]
FreePointName = Annotated[str, AfterValidator(check_free_name)]
