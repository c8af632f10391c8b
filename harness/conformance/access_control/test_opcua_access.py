"""cl. 66, 76, 78 access control of an OPC UA device (a controller of the ASUTP): who may open a session, over
which security, with which credentials, how repeated failures are stopped, and what each role may do —
each check tagged with the IEC 62443-3-3 system requirement (SR) it evidences.

Everything is judged from outside over OPC UA against what the profile declares (policies × modes,
identities, lockout, roles) with the rig's accounts and the harness's own client certificates
(OUTDIR/pki: a trusted one the lab installs, an untrusted one nobody does). Every session attempt is
kept as evidence: accepted, or refused at which step (endpoint, channel, session, activation, use) with
which status.
"""

from __future__ import annotations

import pytest

from harness.config.opcua_map import Absent, IdentityKind, Operation, SecurityMode, SecurityPolicy
from harness.conformance.access_control.opcua_access import (
    audit_start,
    by_privilege,
    conclude,
    default_credentials,
    described,
    expect_accepted,
    expect_refused,
    first_password_account,
    lock_margin_s,
    lockout_of,
    login,
    opcua_map,
    password_accounts,
    require_user_names,
    secured_endpoint,
    unsettled,
    wait_out_lockout,
    wrong_password,
)
from harness.conformance.access_control.opcua_operations import Exerciser, Outcome
from harness.conformance.cleanup import restoring
from harness.events import AuditKind
from harness.reporting.texts import Msg
from harness.verdicts import Inconclusive

pytestmark = pytest.mark.dut_kind("controller")


@pytest.mark.check("KZ-66-01", "no service without an activated session; anonymous sessions are refused unless the "
                   "profile declares them, and then get nothing beyond their role [SR 1.1, SR 1.2]")
def test_anonymous_access(dut, check, harness_run):
    declared = opcua_map(dut)
    expect_refused(check, Msg("Read on a session created but never activated"),
                   dut.device.attempt_session(identity="anonymous", tamper="read_before_activation"),
                   note=Msg("no identity given at all (Part 4 5.6.2: Bad_SessionNotActivated)"))
    if IdentityKind.ANONYMOUS not in declared.security.identities:
        offering = [str(e) for e in dut.device.endpoints() if "anonymous" in e.identities]
        check.equal(Msg("endpoints offering an anonymous identity token"), ", ".join(offering) or Msg("none"),
                    Msg("none"),
                    note=Msg("the profile declares no anonymous identity"))
        expect_refused(check, Msg("anonymous session over the declared security"),
                       dut.device.attempt_session(identity="anonymous"))
        conclude(check)
        return
    least = declared.security.anonymous_role or (by_privilege(declared)[0] if declared.roles else None)
    granted = set(declared.roles[least]) if least else {Operation.READ}
    if not expect_accepted(check, Msg("anonymous session (declared)"),
                           dut.device.attempt_session(identity="anonymous")):
        conclude(check)
    exerciser = Exerciser(dut, audit_start(dut), allow_destructive=harness_run.loaded.rig.allow_destructive)
    with dut.device.session(identity="anonymous") as session:
        for operation in Operation:
            allowed = operation in granted
            _judge(check, Msg("anonymous: {operation}",
                              operation=operation.value), exerciser.run(session, operation, allowed), allowed,
                   (Msg(" (the role anonymous sessions get, {role}, may)",
                        role=least or Msg("(none declared)")) if allowed
                    else Msg(" (the role anonymous sessions get, {role}, may not)",
                             role=least or Msg("(none declared)"))),
                   offered=operation in _offered(declared) or not declared.roles)
        _judge(check, Msg("anonymous: write read-only points"), exerciser.read_only(session), False)
    conclude(check)


def _judge(check, name: str, outcome: Outcome, allowed: bool, also: str = "", offered: bool = True) -> None:
    """One row of a role × operation matrix; a row that could not be tried is no pass (INCONCLUSIVE) — unless the
    device offers the operation to nobody (no declared role is granted it) and declares no means to it: then there
    is nothing to keep apart, and the row says so."""
    limit = Msg("done") if allowed else Msg("refused, nothing changed")
    if not outcome.exercised and not offered and not outcome.silent:
        check.measure(name, Msg("not offered by the device"), passed=True, limit="",
                      note=Msg("no declared role is granted it; {note}{also}", note=outcome.note, also=also))
        return
    m = check.measure(name, outcome.measured, passed=outcome.passed and outcome.exercised, limit=limit,
                      note=outcome.note + also)
    if not outcome.exercised:
        unsettled(check, m, Msg("{name} not tried ({note})", name=name, note=outcome.note))


def _as_role(dut, role: str) -> dict[str, str] | None:
    """How to open a session as ``role``: the rig's account for it, else the harness's trusted certificate when
    the profile says certificate users get that role (``security.certificate_role``); None: no way."""
    if role in dut.spec.credentials:
        return {"role": role}
    security = opcua_map(dut).security
    if security.certificate_role == role and IdentityKind.CERTIFICATE in security.identities:
        return {"identity": "certificate"}
    return None


def _offered(declared) -> set[Operation]:
    """Operations at least one declared role is granted."""
    return {op for ops in declared.roles.values() for op in ops}


@pytest.mark.check("KZ-66-02", "no session without security: GetEndpoints offers no SecurityPolicy None unless "
                   "declared, a session over None is refused also to a client that skips endpoint matching, "
                   "and every declared policy and mode really works [SR 4.1, SR 3.1]")
def test_no_session_without_security(dut, check):
    security = opcua_map(dut).security
    offered = dut.device.endpoints()
    pairs = {(e.policy, e.mode) for e in offered}
    declared = {(p.value, m.value) for p in security.policies for m in security.modes
                if (p == SecurityPolicy.NONE) == (m == SecurityMode.NONE)}
    # Any other undeclared endpoint is KZ-68-08's business (GetEndpoints lists exactly the declared ones);
    # here only an endpoint without security counts.
    unsecured = sorted((p, m) for p, m in pairs - declared if p == SecurityPolicy.NONE.value)
    check.equal(Msg("endpoints without security offered though not declared"),
                ", ".join(f"{p}/{m}" for p, m in unsecured) or Msg("none"), Msg("none"),
                note=Msg("offered: {value}", value=', '.join(str(e) for e in offered) or 'nothing'))
    how = login(dut)
    if not security.secure_policies:
        # Rules cl. 51 and 82 ask for cryptographic protection of the channels: declaring its absence is no excuse
        expect_accepted(check, Msg("session over SecurityPolicy None (declared: the only endpoint)"),
                        dut.device.attempt_session(**how,
                                                   policy=SecurityPolicy.NONE), note=Msg("what the device offers"))
        check.measure(Msg("endpoints with message security (Sign or SignAndEncrypt)"), Msg("none declared"),
                      passed=False,
                      limit=Msg("at least one"), note=Msg("every session's messages, and its passwords, travel "
                                                     "unprotected; the Rules ask for cryptographic protection of "
                                                     "channels (cl. 51, 82)"))
        conclude(check)
    if SecurityPolicy.NONE in security.policies:
        check.measure(Msg("sessions over SecurityPolicy None"), Msg("declared"), passed=True,
                      note=Msg("the profile declares policy None next to secured endpoints: sessions without "
                               "security are documented behaviour"))
    else:
        expect_refused(check, Msg("session over SecurityPolicy None (a client matching endpoints)"),
                       dut.device.attempt_session(**how, policy=SecurityPolicy.NONE))
        expect_refused(check, Msg("session over SecurityPolicy None (a client skipping endpoint matching)"),
                       dut.device.attempt_session(**how, skip_endpoint_matching=True),
                       note=Msg("raw CreateSession/ActivateSession on a None channel; credentials would travel in "
                                "clear"))
    for policy in security.secure_policies:
        for mode in security.secure_modes:
            check.equal(Msg("{value}/{value2} listed in GetEndpoints", value=policy.value,
                            value2=mode.value), (policy.value, mode.value) in pairs,
                        True)
            expect_accepted(check, Msg("session over {policy}/{mode} (trusted client certificate)",
                                       policy=policy.value, mode=mode.value),
                            dut.device.attempt_session(**how, policy=policy, mode=mode))
    conclude(check)


@pytest.mark.check("KZ-66-03", "a client certificate the device does not trust is refused, as application (also "
                   "when CreateSession leaves out the ClientCertificate) and as user identity [SR 1.2, SR 1.8]")
def test_untrusted_certificate(dut, check):
    declared = opcua_map(dut)
    how = login(dut)
    secured = secured_endpoint(dut)
    if secured is None:
        check.measure(Msg("client applications authenticated by certificate"),
                      Msg("no: no secured endpoint, no application certificate is ever exchanged"), passed=False,
                      limit=Msg("a trusted certificate on every session"),
                      note=Msg("offered: {endpoints}; any application gets a session (Part 2: applications "
                               "authenticate by their instance certificates in the secure channel)",
                               endpoints=", ".join(str(e) for e in dut.device.endpoints()) or Msg("nothing")))
        conclude(check)
        return
    policy, mode = secured
    trusted = dut.device.attempt_session(**how, policy=policy, mode=mode)
    if not trusted.accepted:
        raise Inconclusive(Msg("the harness's trusted certificate is refused too ({trusted}): a refusal of the "
                               "untrusted one would prove nothing. Install OUTDIR/pki/harness-client.der in the "
                               "device's trust list, or name the certificate it trusts in the rig "
                               "(client_certificate, client_key)", trusted=trusted))
    check.measure(Msg("the same session with the trusted certificate (control)"), Msg("accepted"), passed=True,
                  note=Msg("{identity} over {policy}/{mode}; {certificates}", identity=trusted.identity,
                           policy=trusted.policy, mode=trusted.mode, certificates=trusted.certificates))
    untrusted = Msg("OUTDIR/pki/untrusted-client.der, made for this run and trusted by nobody")
    expect_refused(check, Msg("secure channel with an untrusted application certificate"),
                   dut.device.attempt_session(**how, policy=policy, mode=mode, application="untrusted"),
                   note=untrusted)
    expect_refused(check, Msg("secure channel with an untrusted application certificate, CreateSession without "
                              "ClientCertificate"), dut.device.attempt_session(**how, policy=policy, mode=mode,
                                                                    application="untrusted",
                                                                    tamper="no_client_certificate"),
                   note=Msg("{untrusted}; then ActivateSession and a Read of ServerStatus.State (Part 4 5.6.2: the "
                            "field is required on every secured channel)", untrusted=untrusted))
    expect_refused(check, Msg("ActivateSession with a forged ClientSignature (trusted certificate)"),
                   dut.device.attempt_session(**how, policy=policy, mode=mode, tamper="forged_client_signature"),
                   note=Msg("zeros instead of the proof that the client holds its certificate's key, then a Read "
                            "(Part 4 5.6.3: Bad_ApplicationSignatureInvalid)"))
    if IdentityKind.CERTIFICATE in declared.security.identities:
        expect_refused(check, Msg("untrusted certificate as user identity (over a trusted channel)"),
                       dut.device.attempt_session(identity="untrusted_certificate", policy=policy, mode=mode))
    conclude(check)


@pytest.mark.check("KZ-76-01", "a wrong password or an unknown user is refused; the right password is accepted "
                   "[SR 1.1, SR 1.5]")
def test_wrong_password_refused(dut, check):
    how = require_user_names(dut)
    lockout = lockout_of(dut)
    accounts = password_accounts(dut)
    if Absent.PASSWORD_CHECK in opcua_map(dut).absent:  # declared honestly, tried all the same
        check.measure(Msg("password check"), Msg("declared absent: any password works"), passed=False,
                      limit=Msg("present"),
                      note=Msg("opcua.absent lists password_check; the Rules ask for user authentication (cl. 66, "
                               "76)"))
    if not accounts:
        unsettled(check, None, Msg("user names {how}, but the rig gives no user name and password for a declared role "
                                   "(duts.{dut}.credentials): a real account's wrong and right password are untried",
                                   how=how, dut=dut.name))
    for role, cred in accounts:
        expect_refused(check, Msg("{role}: wrong password for {user}", role=role, user=cred.user),
                       dut.device.attempt_session(identity=(cred.user, wrong_password(cred.password))))
        if lockout is not None and lockout.after_failures <= 1:
            wait_out_lockout(dut)  # one failure locks: the right password is judged once the lock is over
        expect_accepted(check, Msg("{role}: the rig's password for {user}", role=role,
                                   user=cred.user), dut.device.attempt_session(role=role))
    known = {c.user for _, c in password_accounts(dut)}
    unknown = next(f"tek-harness-nobody-{i}" for i in range(100) if f"tek-harness-nobody-{i}" not in known)
    expect_refused(check, Msg("unknown user name"), dut.device.attempt_session(identity=(unknown, "whatever-1")))
    conclude(check)


@pytest.mark.check("KZ-76-02", "after the declared number of failed logins the account is locked or delayed for "
                   "about the declared time, then usable again, and the failures and the lockout are in the "
                   "audit log with the user [SR 1.11]")
def test_lockout_after_failures(dut, check):
    require_user_names(dut)
    lockout = lockout_of(dut)
    if lockout is None:  # a FAIL on the declaration alone: no lab account is needed to know it
        said = Absent.LOCKOUT in opcua_map(dut).absent
        check.measure(Msg("declared lockout"), Msg("declared absent") if said else Msg("none"), passed=False,
                      limit=Msg("declared"),
                      note=Msg("the profile declares that the device has no lockout after repeated failed logins "
                               "(opcua.absent)") if said else Msg("the profile declares no lockout after repeated "
                                                                  "failed logins (opcua.security.lockout)"))
        conclude(check)
    assert lockout is not None
    role, cred = first_password_account(dut)
    n, duration, margin = lockout.after_failures, lockout.duration_s, lock_margin_s(lockout)
    since = audit_start(dut)
    over = [False]

    def unlock() -> None:  # whatever happens, the account is usable again for the checks that follow
        if not over[0]:
            wait_out_lockout(dut)

    with restoring(unlock):
        for i in range(n):
            expect_refused(check, Msg("wrong password {value} of {n} for {user}", value=i + 1, n=n, user=cred.user),
                           dut.device.attempt_session(identity=(cred.user, wrong_password(cred.password))))
        if lockout.kind == "lock":
            expect_refused(check, Msg("the right password at once (account locked)"),
                           dut.device.attempt_session(role=role))
            dut.time.elapse(duration / 2)
            expect_refused(check, Msg("the right password after {value:g} s (still locked)", value=duration / 2),
                           dut.device.attempt_session(role=role))
            dut.time.elapse(duration / 2 + margin)
            over[0] = True
            expect_accepted(check, Msg("the right password after {value:g} s (lock over)", value=duration + margin),
                            dut.device.attempt_session(role=role), note=Msg("declared lock {duration:g} s",
                                                                            duration=duration))
        else:
            delayed = dut.device.attempt_session(role=role)
            # the harness gives up on an answer after the rig's request timeout: a longer delay shows as that
            patience = dut.timing.request_timeout_s
            limit = 0.8 * duration if 0.8 * duration < patience else 0.9 * patience
            check.at_least(Msg("answer time of the next login (delayed)"), round(delayed.duration_s, 3), limit,
                           unit="s", note=Msg("declared delay {duration:g} s, the harness waits {patience:g} s for "
                                              "an answer; {delayed}", duration=duration, patience=patience,
                                              delayed=delayed))
            wait_out_lockout(dut)
            over[0] = True
            prompt = dut.device.attempt_session(role=role)
            expect_accepted(check, Msg("the right password after {value:g} s (delay over)",
                                       value=duration + margin), prompt)
            check.at_most(Msg("answer time once the delay is over"), round(prompt.duration_s, 3), 0.5 * duration,
                          unit="s")
    _lockout_logged(dut, check, cred.user, n, since)
    conclude(check)


def _lockout_logged(dut, check, user: str, failures: int, since) -> None:
    audit = opcua_map(dut).audit_log
    if audit is None:
        said = Absent.AUDIT_LOG in opcua_map(dut).absent
        check.measure(Msg("failed logins and the lockout in the audit log"), Msg("declared absent") if said else
                      Msg("no audit log declared"), passed=False, limit=Msg("logged"),
                      note=Msg("the profile declares that the device keeps no audit log (opcua.absent); cl. 69 asks "
                               "for one") if said else Msg("the profile declares no audit log (opcua.audit_log)"))
        return
    mine = [e for e in dut.device.read_audit_log(start=since) if e.user == user]
    check.at_least(Msg("failed logins of {user} in the audit log ({value})", user=user,
                       value=AuditKind.LOGIN_FAILURE.value),
                   sum(e.kind == AuditKind.LOGIN_FAILURE for e in mine), failures,
                   note=Msg("category {get!r}", get=audit.kinds.get(AuditKind.LOGIN_FAILURE, '(not mapped)')))
    check.at_least(Msg("lockout of {user} in the audit log ({value})", user=user, value=AuditKind.SECURITY_EVENT.value),
                   sum(e.kind == AuditKind.SECURITY_EVENT for e in mine), 1,
                   note=Msg("category {get!r}", get=audit.kinds.get(AuditKind.SECURITY_EVENT, '(not mapped)')))


@pytest.mark.check("KZ-76-03", "no factory default credentials open a session (common defaults and those the "
                   "profile documents) [SR 1.5]")
def test_no_default_credentials(dut, check):
    how = require_user_names(dut)  # no lab account needed: factory accounts are the device's, not the lab's
    lockout = lockout_of(dut)
    rig_accounts = {c.user: role for role, c in password_accounts(dut)}
    pairs = default_credentials(dut)
    users = list(dict.fromkeys(u for u, _ in pairs))
    opened: list[str] = []
    silent: list[str] = []
    waits = 0
    for user in users:
        failures = 0
        for password in (p for u, p in pairs if u == user):
            if lockout is not None and failures >= lockout.after_failures:
                wait_out_lockout(dut)  # the next try must meet the password check, not a lock
                waits, failures = waits + 1, 0
            attempt = dut.device.attempt_session(identity=(user, password))
            if attempt.outcome == "unreachable":
                raise Inconclusive(Msg("{user}: nothing listens at the device's endpoint any more ({error})", user=user,
                                       error=attempt.error))
            if attempt.outcome in ("timeout", "error"):
                silent.append(Msg("{pair}: {outcome}", pair=_pair(user, password), outcome=described(attempt)))
            if attempt.accepted:
                opened.append(_pair(user, password))
                failures = 0
            else:
                failures += 1
        if user in rig_accounts and failures:  # a lab account that shares a factory name is left usable
            if lockout is not None and failures >= lockout.after_failures:
                wait_out_lockout(dut)
            dut.device.attempt_session(role=rig_accounts[user])
    check.equal(Msg("factory default credentials that open a session"),
                Msg.joined(", ", opened) if opened else Msg("none"), Msg("none"),
                note=Msg("user names {how}; {n} user name/password pairs tried ({items}); {waits} pause(s) to let "
                         "a lockout run out between tries of one name", how=how, n=len(pairs), items=', '.join(users),
                         waits=waits))
    if silent:
        unsettled(check, None, Msg("pairs the device gave no verdict on: {pairs}", pairs=Msg.joined(", ", silent)))
    conclude(check)


@pytest.mark.check("KZ-78-01", "every role may do what the profile grants it and nothing else: refused operations "
                   "are refused and change nothing [SR 2.1]")
def test_role_operation_matrix(dut, check, harness_run):
    declared = opcua_map(dut)
    if not declared.roles:
        check.measure(Msg("declared roles"), Msg("none"), passed=False, limit=Msg("declared"),
                      note=Msg("the profile declares no roles (opcua.roles): who may do what cannot be checked"))
        conclude(check)
    exerciser = Exerciser(dut, audit_start(dut), allow_destructive=harness_run.loaded.rig.allow_destructive)
    missing: list[str] = []
    refused_accounts: list[str] = []
    for role, granted in declared.roles.items():
        how = _as_role(dut, role)
        if how is None:
            missing.append(role)
            continue
        opened = dut.device.attempt_session(**how)
        if not opened.accepted:
            refused_accounts.append(f"{role} ({opened})")
            continue
        with dut.device.session(**how) as session:
            for operation in Operation:
                _judge(check, f"{role}: {operation.value}", exerciser.run(session, operation, operation in granted),
                       operation in granted, offered=operation in _offered(declared))
            _judge(check, Msg("{role}: write read-only points", role=role), exerciser.read_only(session), False)
    if missing:
        unsettled(check, None, Msg("the rig gives no credentials for role(s) {missing} (duts.{dut}.credentials): "
                                   "their rows of the role × operation matrix are not checked",
                                   missing=', '.join(missing), dut=dut.name))
    if refused_accounts:
        unsettled(check, None, Msg("the device refused the rig's account for {refused_accounts}: their rows of the "
                                   "role × operation matrix are not checked",
                                   refused_accounts=', '.join(refused_accounts)))
    conclude(check)


def _pair(user: str, password: str | None) -> str:
    """A user name / password pair as the evidence shows it (an empty password said in words)."""
    return f"{user}/{password}" if password else Msg("{user}/(empty)", user=user)
