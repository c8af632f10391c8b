"""cl. 68 (and 81) on an OPC UA DUT: the Discovery and the View, Attribute and Method service sets answer as
OPC UA Part 4 says — GetEndpoints lists exactly the declared security, and Browse, Read, Write and Call give
Bad_NodeIdUnknown for nodes that do not exist, Bad_TypeMismatch for a value of the wrong type and
Bad_UserAccessDenied for a user whose role lacks the right. Node ids, roles and accounts come from the
profile and the rig; the unknown node is one the harness makes up in the device's own namespace."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from harness.conformance.cleanup import restoring
from harness.devices.api import DeviceRefused
from harness.reporting.texts import Msg
from harness.verdicts import Inconclusive, NotApplicable

ALSO = ("81",)
# OPC UA Part 4 / Part 6 status codes (numeric, so that a suite needs no OPC UA library).
BAD = {0x80340000: "BadNodeIdUnknown", 0x80750000: "BadMethodInvalid", 0x80740000: "BadTypeMismatch",
       0x801F0000: "BadUserAccessDenied", 0x80AB0000: "BadInvalidArgument"}
NODE_UNKNOWN, METHOD_INVALID, TYPE_MISMATCH, ACCESS_DENIED = 0x80340000, 0x80750000, 0x80740000, 0x801F0000
WRITE_OPS = {"setpoint": "write_setpoint", "parameter": "write_parameter"}


def _text(items: set[str]) -> str:
    return ", ".join(sorted(items))


def _opcua(dut) -> Any:
    if dut.profile.opcua is None:
        raise NotApplicable(Msg("{name} speaks {protocol}, not OPC UA: the OPC UA checks do not apply", name=dut.name,
                                protocol=dut.profile.protocol))
    return dut.profile.opcua


def _status(call: Callable[[], object]) -> tuple[int | None, str]:
    """The status a refused service call carries (None: it was accepted), and how to show it."""
    try:
        call()
    except DeviceRefused as exc:
        return exc.code, _name(exc.code)
    return None, "accepted (Good)"


def _name(code: int) -> str:
    """The status code's name from OPC UA Part 6's table (asyncua carries it), else its hex value."""
    from asyncua.ua.status_codes import get_name_and_doc

    try:
        name = BAD.get(code) or get_name_and_doc(code)[0]
    except Exception:
        name = ""
    return name if name not in ("", "Bad", "Good", "Uncertain") else f"0x{code:08X}"  # vendor-specific: hex


def _expect(check, label: str, call: Callable[[], object], *codes: int) -> bool:
    code, shown = _status(call)
    return check.measure(label, shown, passed=code in codes, limit=Msg.joined(" | ", (BAD[c] for c in codes))).passed


def _roles(dut, operation: str, allowed: bool) -> list[str]:
    """Roles the rig has accounts for that may (``allowed``) or may not perform ``operation``, ordered by their
    declared rights (fewest operations first, then by name) — never by the order the profile lists them in."""
    ua = _opcua(dut)
    return sorted((r for r, ops in ua.roles.items()
                   if r in dut.spec.credentials and (operation in [str(o) for o in ops]) == allowed),
                  key=lambda r: (len(ua.roles[r]), r))


def _writable(dut) -> tuple[str, Any, str] | None:
    """A declared setpoint or parameter point: (name, point, operation its write needs)."""
    for name, point in _opcua(dut).points.items():
        op = WRITE_OPS.get(str(point.kind))
        if op is not None:
            return name, point, op
    return None


def _control_method(dut) -> tuple[str, Any] | None:
    return next(((n, m) for n, m in _opcua(dut).methods.items() if str(m.kind) == "control"), None)


def _entitled(dut, operation: str) -> list[tuple[str, dict[str, str]]]:
    """Every way the rig has to open a session that may ``operation``: (who, ``session`` keywords) — each role
    account whose declared rights include it, by rights then name, so that a verdict never rests on the order the
    profile lists its roles in and every answer is about the node or the value, not the access. Without such an
    account: the harness's certificate when the role certificate users get (``security.certificate_role``) may
    do it, else an anonymous session when the role anonymous ones get (``security.anonymous_role``, else the least
    privileged) may."""
    roles = _roles(dut, operation, True)
    if roles:
        return [(r, {"role": r}) for r in roles]
    ua = _opcua(dut)
    identities = [str(i) for i in ua.security.identities]
    certified = ua.security.certificate_role
    if certified is not None and "certificate" in identities and operation in [str(o) for o in ua.roles[certified]]:
        return [(f"certificate ({certified})", {"identity": "certificate"})]
    if "anonymous" in identities:
        ranked = sorted(ua.roles, key=lambda r: (len(ua.roles[r]), r))
        role = ua.security.anonymous_role or (ranked[0] if ranked else None)
        if role is None or operation in [str(o) for o in ua.roles[role]]:
            return [("anonymous", {"identity": "anonymous"})]
    raise Inconclusive(Msg("the rig gives no account for a role that may {operation} (duts.{name}.credentials), "
                           "and no anonymous session may do it", operation=operation, name=dut.name))


@pytest.mark.check("KZ-68-08", "GetEndpoints lists exactly the declared security policies and modes", also=ALSO)
def test_endpoints_as_declared(dut, check):
    security = _opcua(dut).security
    offered = dut.device.endpoints()
    policies = {str(p) for p in security.policies}
    modes = {str(m) for m in security.modes} | ({"None"} if "None" in policies else set())
    check.equal(Msg("security policies offered"), _text({e.policy for e in offered}), _text(policies))
    check.equal(Msg("security modes offered"), _text({e.mode for e in offered}), _text(modes))
    expected = {f"{p}/{m}" for p in policies for m in modes if (p == "None") == (m == "None")}
    check.equal(Msg("policy/mode pairs offered"), _text({f"{e.policy}/{e.mode}" for e in offered}), _text(expected),
                note=Msg("every declared policy in every declared mode; None only with None"))
    check.require()


@pytest.mark.check("KZ-68-09", "Browse, Read, Write and Call of a node that does not exist give "
                   "Bad_NodeIdUnknown (a method that is no method of the object: Bad_MethodInvalid)", also=ALSO)
def test_unknown_nodes(dut, check):
    ua = _opcua(dut)
    unknown = f"nsu={ua.namespace_uri};s=tek-harness.no-such-node.{dut.seed}"
    for who, how in _entitled(dut, "read"):
        with dut.device.session(**how) as s:
            _expect(check, Msg("Browse of {unknown} as {who}", unknown=unknown, who=who), lambda: s.browse(unknown),
                    NODE_UNKNOWN)
            _expect(check, Msg("Read of {unknown} as {who}", unknown=unknown, who=who), lambda: s.read_node(unknown),
                    NODE_UNKNOWN)
    writable = _writable(dut)
    if writable is not None:
        for who, how in _entitled(dut, writable[2]):
            with dut.device.session(**how) as s:
                _expect(check, Msg("Write of {unknown} as {who}", unknown=unknown, who=who),
                        lambda: s.write_node(unknown, 0.0, as_type="Double"),
                        NODE_UNKNOWN)
    method = _control_method(dut)
    if method is not None:
        name, m = method
        for who, how in _entitled(dut, "control"):
            with dut.device.session(**how) as s:
                _expect(check, Msg("Call of {name}'s method on object {unknown} as {who}", name=name, unknown=unknown,
                                   who=who),
                        lambda: s.call_node(unknown, m.method), NODE_UNKNOWN)
                _expect(check, Msg("Call of method {unknown} on {name}'s object as {who}", unknown=unknown, name=name,
                                   who=who),
                        lambda: s.call_node(m.object, unknown), METHOD_INVALID, NODE_UNKNOWN)
    check.require()


@pytest.mark.check("KZ-68-10", "a Write of a value of the wrong data type gives Bad_TypeMismatch and changes "
                   "nothing", also=ALSO)
def test_wrong_type(dut, check):
    writable = _writable(dut)
    if writable is None:
        raise Inconclusive(Msg("the profile declares no setpoint or parameter point to write"))
    name, point, op = writable
    for who, how in _entitled(dut, op):
        with dut.device.session(**how) as s:
            _write_wrong_type(check, s, name, point, who)
    check.require()


def _write_wrong_type(check, s, name: str, point: Any, who: str) -> None:
    before = s.read_node(point.node)
    wrong, as_type = (1.0, "Double") if isinstance(before, str) else ("tek-harness", "String")
    with restoring(lambda: s.read_node(point.node) != before and s.write_node(point.node, before)):
        _expect(check, Msg("Write of {name} as {as_type} {wrong!r} as {who} (its value is {before!r})", name=name,
                           as_type=as_type, wrong=wrong, who=who, before=before),
                lambda: s.write_node(point.node, wrong, as_type=as_type), TYPE_MISMATCH)
        check.equal(Msg("{name} afterwards ({who})", name=name, who=who), s.read_node(point.node), before)


@pytest.mark.check("KZ-68-11", "Write and Call by a user whose role lacks the right give Bad_UserAccessDenied "
                   "and change nothing", also=ALSO)
def test_missing_rights(dut, check):
    probed = 0
    writable = _writable(dut)
    if writable is not None:
        name, point, op = writable
        lacking = _roles(dut, op, False)
        if lacking:
            with dut.device.session(role=lacking[0]) as s:
                value = s.read_node(point.node)
                _expect(check, Msg("Write of {name} (its own value {value!r}) as {lacking} (no {op})", name=name,
                                   value=value, lacking=lacking[0], op=op),
                        lambda: s.write_node(point.node, value), ACCESS_DENIED)
                probed += 1
    method = _control_method(dut)
    if method is not None:
        name = method[0]
        lacking = _roles(dut, "control", False)
        if lacking:
            with dut.device.session(role=lacking[0]) as s:
                _expect(check, Msg("Call of {name} as {lacking} (no control)", name=name, lacking=lacking[0]),
                        lambda: s.call(name), ACCESS_DENIED)
                probed += 1
    if not probed:
        raise Inconclusive(Msg("no role the rig has an account for lacks the right to write or call what the "
                               "profile declares, so refusal for missing rights cannot be provoked"))
    check.require()
