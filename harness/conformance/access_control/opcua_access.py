"""What the OPC UA access-control checks share: the declared security, the account a check logs in
with, how a session attempt is judged, and keeping the device's lockout out of the next check's way.

Access control is judged by what a device refuses, so every attempt is evidence: the driver hands
back a ``SessionAttempt`` (accepted, or refused at which step with which status) and it becomes a
measurement as it is. Nothing here knows a device: identities, roles, lockout and accounts come
from the profile and the rig (docs/opcua.md); waiting out a lockout goes through the bench's time
control (a simulator fast-forwards its device time, a real device is waited for, bounded by the
rig's ``timing.max_wall_wait_s``).
"""

from __future__ import annotations

import weakref
from datetime import datetime, timedelta
from typing import Any

from harness.config.opcua_map import IdentityKind, Lockout, OpcuaMap, SecurityMode, SecurityPolicy
from harness.config.rig_security import Credential
from harness.devices.opcua_session import SessionAttempt
from harness.reporting.i18n import pgettext
from harness.reporting.records import Check, Measurement
from harness.reporting.texts import Msg
from harness.verdicts import Inconclusive, NotApplicable

# Factory accounts devices are known to ship with (ICS advisories, vendor manuals). KZ-76-03 tries these
# besides the ones the profile's `security.default_credentials` names; none may open a session.
COMMON_DEFAULTS: tuple[tuple[str, str], ...] = (
    ("admin", "admin"), ("admin", "password"), ("admin", "1234"), ("admin", "12345"), ("admin", ""),
    ("administrator", "administrator"), ("administrator", "admin"), ("root", "root"), ("root", "admin"),
    ("user", "user"), ("operator", "operator"), ("guest", "guest"), ("service", "service"),
    ("supervisor", "supervisor"), ("engineer", "engineer"), ("maintenance", "maintenance"), ("opcua", "opcua"),
    ("default", "default"),
)
AUDIT_SLACK_S = 0.5  # audit windows start this much before the device clock read at a check's start


def opcua_map(dut: Any) -> OpcuaMap:
    """The profile's `opcua` section; a device without one is judged by the suite's Modbus checks."""
    declared = getattr(dut.profile, "opcua", None)
    if declared is None:
        raise NotApplicable(Msg("profile {model} declares no OPC UA interface (no `opcua` section); the Modbus "
                                "checks of this suite (KZ-94) judge its access control", model=dut.profile.model))
    return declared


def by_privilege(declared: OpcuaMap) -> list[str]:
    """Declared roles, least privileged (fewest operations) first, then by name — never by the order the profile
    lists them in."""
    return sorted(declared.roles, key=lambda r: (len(declared.roles[r]), r))


def password_accounts(dut: Any) -> list[tuple[str, Credential]]:
    """(role, the rig's account) for every declared role the rig gives a user name and password for,
    least privileged first."""
    creds = dut.spec.credentials
    return [(r, creds[r]) for r in by_privilege(opcua_map(dut)) if r in creds and creds[r].user is not None]


def require_user_names(dut: Any) -> str:
    """Whether the device takes user names and passwords — asked of the device (the identity tokens its endpoints
    offer), not only of the profile: N/A only when neither says so. Returns how it is known, for the evidence."""
    declared = IdentityKind.USERNAME in opcua_map(dut).security.identities
    offered = [str(e) for e in dut.device.endpoints() if "username" in e.identities]
    if not declared and not offered:
        raise NotApplicable(Msg("the device takes no user names: the profile declares none "
                                "(opcua.security.identities) and no endpoint offers a user-name token in "
                                "GetEndpoints"))
    if offered and not declared:
        return Msg("not declared, but offered by the device: {endpoints}", endpoints=", ".join(offered))
    if offered:
        return Msg("declared, offered: {endpoints}", endpoints=", ".join(offered))
    return Msg("declared, yet offered by no endpoint")


def first_password_account(dut: Any) -> tuple[str, Credential]:
    """The least privileged account with a user name and password: what a check that must fail logins,
    or be locked out, spends (never more than a reader's rights are at stake). Ask ``require_user_names`` first."""
    declared = opcua_map(dut)
    accounts = password_accounts(dut)
    if not accounts:
        raise Inconclusive(Msg("the rig gives no user name and password for any declared role ({value}): set "
                               "duts.{name}.credentials", value=', '.join(declared.roles) or 'none declared',
                               name=dut.name))
    return accounts[0]


def login(dut: Any) -> dict[str, Any]:
    """How a check that needs just *a* session logs in (``attempt_session`` keywords): the least privileged
    role the rig has an account for, else the harness's certificate as identity, else anonymous if declared."""
    declared = opcua_map(dut)
    for role in by_privilege(declared):
        if role in dut.spec.credentials:
            return {"role": role}
    if IdentityKind.CERTIFICATE in declared.security.identities:
        return {"identity": "certificate"}
    if IdentityKind.ANONYMOUS in declared.security.identities:
        return {"identity": "anonymous"}
    raise Inconclusive(Msg("no session can be opened: the rig gives no credentials (duts.{name}.credentials) for a "
                           "declared role and the device declares neither certificate nor anonymous identities",
                           name=dut.name))


def secured_endpoint(dut: Any) -> tuple[SecurityPolicy, SecurityMode] | None:
    """The secured policy and mode a certificate check opens its channels with: the first declared secure policy
    (SignAndEncrypt when declared), else the first secured endpoint the device offers all the same; None when
    there is no secured endpoint at all (no application certificate is ever exchanged)."""
    security = opcua_map(dut).security
    if security.secure_policies:
        mode = SecurityMode.SIGN_AND_ENCRYPT if SecurityMode.SIGN_AND_ENCRYPT in security.modes else \
            security.secure_modes[0]
        return security.secure_policies[0], mode
    known = {p.value for p in SecurityPolicy} - {SecurityPolicy.NONE.value}
    offered = [(e.policy, e.mode) for e in dut.device.endpoints() if e.policy in known and e.mode != "None"]
    return (SecurityPolicy(offered[0][0]), SecurityMode(offered[0][1])) if offered else None


def described(attempt: SessionAttempt) -> str:
    """An attempt's outcome in the words of the evidence."""
    if attempt.accepted:
        return Msg("accepted")
    if attempt.outcome == "timeout":
        return Msg("no answer ({error})", error=attempt.error)
    step = Msg.in_context("session step", attempt.step) if attempt.step in SESSION_STEPS else str(attempt.step)
    if attempt.outcome == "error":
        return Msg("not decided by the device: the harness failed at {step} ({error})", step=step,
                   error=attempt.error)
    return Msg("refused at {step}: {status}", step=step, status=attempt.status_name or attempt.error)


# Where a session attempt can be refused (SessionAttempt.step), each a word of the evidence, and the anonymous
# identity's name: marked here so that extraction finds them (they are translated where shown, in their context).
_WORDS = (pgettext("session step", "endpoint"), pgettext("session step", "channel"),
          pgettext("session step", "session"), pgettext("session step", "activation"), pgettext("session step", "use"),
          pgettext("identity", "anonymous"))
SESSION_STEPS = ("endpoint", "channel", "session", "activation", "use")


def _answered(name: str, attempt: SessionAttempt) -> None:
    if attempt.outcome == "unreachable":
        raise Inconclusive(Msg("{name}: nothing listens at the device's endpoint any more ({error})", name=name,
                               error=attempt.error))


def expect_refused(check: Check, name: str, attempt: SessionAttempt, note: str = "") -> bool:
    """A session that must not be granted: only the device's refusal passes; silence or a failure of the
    harness's own leaves the check unsettled (INCONCLUSIVE unless something else FAILs)."""
    _answered(name, attempt)
    m = check.measure(name, described(attempt), passed=attempt.outcome == "refused", limit=Msg("refused"),
                      note=_noted(attempt, note))
    if attempt.outcome in ("timeout", "error"):
        unsettled(check, m, Msg("{name}: {outcome}", name=name, outcome=described(attempt)))
    return m.passed


def expect_accepted(check: Check, name: str, attempt: SessionAttempt, note: str = "") -> bool:
    _answered(name, attempt)
    m = check.measure(name, described(attempt), passed=attempt.accepted, limit=Msg("accepted"),
                      note=_noted(attempt, note))
    if attempt.outcome in ("timeout", "error"):
        unsettled(check, m, Msg("{name}: {outcome}", name=name, outcome=described(attempt)))
    return m.passed


# ---- what a check tried without an answer ------------------------------------------------------------------
_UNSETTLED: weakref.WeakKeyDictionary[Check, list[tuple[Measurement | None, str]]] = weakref.WeakKeyDictionary()


def unsettled(check: Check, measurement: Measurement | None, why: str) -> None:
    """``measurement`` (recorded as not passed; None: none recorded) is no verdict: nothing was tried, or the
    device never answered."""
    _UNSETTLED.setdefault(check, []).append((measurement, why))


def conclude(check: Check) -> None:
    """A check's end: FAIL on any real failure; else INCONCLUSIVE naming what stayed untried or unanswered;
    else PASS. Nothing untried ever counts as passed."""
    pending = _UNSETTLED.pop(check, [])
    ids = {id(m) for m, _ in pending}
    if any(id(m) not in ids for m in check.failures):
        check.require()
    if pending:
        raise Inconclusive(Msg("not decided: {what}", what=Msg.joined("; ", (why for _, why in pending))))
    check.require()


def _noted(attempt: SessionAttempt, note: str) -> str:
    """The evidence of an attempt: who over which security, and which certificates were sent."""
    identity = Msg.in_context("identity", "anonymous") if attempt.identity == "anonymous" else attempt.identity
    return Msg.joined("; ", filter(None, [note, Msg("{identity} over {policy}/{mode}", identity=identity,
                                                    policy=attempt.policy, mode=attempt.mode),
                                          attempt.certificates]))


def wrong_password(password: str | None) -> str:
    """A password that is certainly not the account's (the evidence never shows either)."""
    return f"{password or ''}#not-the-password"


# ---- lockout ----------------------------------------------------------------------------------------------
def lockout_of(dut: Any) -> Lockout | None:
    return opcua_map(dut).security.lockout


def lock_margin_s(lockout: Lockout) -> float:
    """How long past the declared duration a lock may still hold (clock steps, the device's own tick)."""
    return max(1.0, 0.1 * lockout.duration_s)


def wait_out_lockout(dut: Any) -> None:
    """Let the declared lock (or delay) run out, so the account is usable again for what follows."""
    lockout = lockout_of(dut)
    if lockout is not None:
        dut.time.elapse(lockout.duration_s + lock_margin_s(lockout))


def default_credentials(dut: Any) -> list[tuple[str, str]]:
    """The profile's documented factory accounts, then the common ones, each once."""
    declared = [(c.user, c.password) for c in opcua_map(dut).security.default_credentials]
    return list(dict.fromkeys([*declared, *COMMON_DEFAULTS]))


# ---- the audit log --------------------------------------------------------------------------------------------
def audit_start(dut: Any) -> datetime | None:
    """Where a check's audit window starts: the device clock now (less a little), or None (the whole log)
    when the profile declares no clock to read."""
    if dut.profile.clock is None or "clock" not in opcua_map(dut).points:
        return None
    return dut.device.read_clock().value - timedelta(seconds=AUDIT_SLACK_S)
