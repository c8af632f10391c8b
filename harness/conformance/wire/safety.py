"""Where robustness campaigns may send: refused before a single packet otherwise.

Malformed frames and storms are attacks. The harness sends them only to a DUT it knows is the lab's own:
on loopback, in a network namespace this run made (``link: netns``), on a serial line of the rig, or at an
address the rig lists explicitly in ``lab_allow_list`` — and only on a rig that allows destructive suites.
A host *name* other than localhost is refused too: resolving it is already traffic, and a name says nothing
about whose device answers.
"""

from __future__ import annotations

import ipaddress
from typing import Any


def refusal(runtime: Any, rig: Any) -> str | None:
    """Why a robustness campaign must not run against this DUT (None: it may)."""
    if not rig.allow_destructive:
        return (f"rig {rig.name!r} does not allow destructive suites (allow_destructive: false); robustness "
                "campaigns send malformed frames and storms")
    if runtime.spec.transport.tcp is None:
        return None  # a serial line of the rig reaches nothing but the DUT on it
    host = str(runtime.endpoint.get("host") or runtime.spec.transport.tcp.host)
    return target_refusal(host, rig.lab_allow_list, getattr(runtime.main_link, "ns_address", None))


def target_refusal(host: str, allow_list: list[str], namespace_address: str | None = None) -> str | None:
    """Why ``host`` is no target for an attack (None: loopback, the harness's namespace, or allow-listed)."""
    if host == "localhost":
        return None
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return (f"refused: {host!r} is a host name; robustness campaigns target addresses only (loopback, a "
                "network namespace this harness made, or the rig's lab_allow_list)")
    if address.is_loopback or (namespace_address is not None and host == namespace_address):
        return None
    if any(address in ipaddress.ip_network(net) for net in allow_list):
        return None
    return (f"refused: {host} is not loopback, not a network namespace this harness made, and not on the "
            "rig's lab_allow_list — robustness campaigns attack only the lab's own devices; if this one is, add "
            f"it to the rig's lab_allow_list (e.g. lab_allow_list: [{host}/32])")
