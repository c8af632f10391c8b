"""How an OPC UA access check turns session attempts into a verdict (issue 14.6, 14.9): only the device's own
answer is a refusal; silence (a timeout) or a failure inside the harness decides nothing — the check is
INCONCLUSIVE unless something else FAILs; and the evidence names the certificates each attempt sent (12.12)."""

from __future__ import annotations

import pytest

from harness.conformance.access_control.opcua_access import conclude, expect_accepted, expect_refused
from harness.devices.opcua_session import SessionAttempt, _outcome_of
from harness.reporting.records import Check, CheckFailed
from harness.verdicts import Inconclusive


def _attempt(outcome: str, accepted: bool = False, status: str | None = None) -> SessionAttempt:
    return SessionAttempt(accepted=accepted, outcome=outcome, step=None if accepted else "session",
                          status_code=0x80130000 if status else None, status_name=status, error="x",
                          policy="Basic256Sha256", mode="SignAndEncrypt", identity="username:u",
                          skip_endpoint_matching=False, duration_s=0.1,
                          certificates="channel untrusted-client.der; CreateSession ClientCertificate none")


def _check() -> Check:
    return Check("KZ-66-03", "t", "access_control", ["66"], "plc")


def test_only_the_devices_answer_is_a_refusal():
    from asyncua import ua

    untrusted = ua.StatusCodes.BadCertificateUntrusted
    assert _outcome_of(ua.UaStatusCodeError(untrusted), untrusted) == "refused"
    assert _outcome_of(ConnectionResetError("reset by peer"), None) == "refused"  # the device closed it
    assert _outcome_of(TimeoutError(), None) == "timeout"
    assert _outcome_of(ValueError("signature did not verify"), None) == "error"  # the harness's own failure
    assert _outcome_of(FileNotFoundError("harness-client.der"), None) == "error"
    assert _outcome_of(ConnectionRefusedError(), None) == "unreachable"


def test_a_refusal_passes_and_names_the_certificates_sent():
    check = _check()
    assert expect_refused(check, "untrusted", _attempt("refused", status="BadCertificateUntrusted"))
    conclude(check)  # PASS: no exception
    assert "CreateSession ClientCertificate none" in check.measurements[0].note


@pytest.mark.parametrize("outcome", ["timeout", "error"])
def test_silence_or_a_harness_failure_is_inconclusive_not_a_refusal(outcome):
    check = _check()
    assert not expect_refused(check, "untrusted", _attempt(outcome))
    with pytest.raises(Inconclusive, match="untrusted"):
        conclude(check)


def test_a_real_failure_still_fails_beside_an_unanswered_attempt():
    check = _check()
    expect_refused(check, "silent", _attempt("timeout"))
    expect_refused(check, "let in", _attempt("accepted", accepted=True))
    with pytest.raises(CheckFailed, match="let in"):
        conclude(check)


def test_an_accepted_session_that_timed_out_is_inconclusive_too():
    check = _check()
    expect_accepted(check, "trusted", _attempt("timeout"))
    with pytest.raises(Inconclusive):
        conclude(check)


def test_the_opcua_robustness_bound_is_the_opcua_response_time():
    """12.14: the robustness checks hold an OPC UA DUT to `opcua.response_time_s`, not to a Modbus setting."""
    from pathlib import Path
    from types import SimpleNamespace

    from harness.config.loading import load_profile
    from harness.conformance.wire.modbus_targets import response_time_s

    profile = load_profile(Path(__file__).parent / "data" / "opcua-reference-hardened.yaml")
    timing = SimpleNamespace(request_timeout_s=2.0)
    assert response_time_s(SimpleNamespace(profile=profile, timing=timing)) == 2.0  # none declared: the rig's
    declared = profile.model_copy(update={"opcua": profile.opcua.model_copy(update={"response_time_s": 0.25})})
    assert response_time_s(SimpleNamespace(profile=declared, timing=timing)) == 0.25
