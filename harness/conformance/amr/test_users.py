"""cl. 62 user management: the administrator views, adds and deletes users; a new user logs in with the rights
given (what its role may do works, what it may not is refused), a deleted one cannot log in."""

from __future__ import annotations

import pytest

from harness.config.amr import AmrOperation
from harness.conformance.amr.field_truth import admin, amr_spec, temporary_user
from harness.devices.amr.api import AmrAccessDenied
from harness.reporting.texts import Msg
from harness.verdicts import Inconclusive

pytestmark = pytest.mark.dut_kind("amr_server")


def _refused(call) -> bool:
    try:
        call()
    except AmrAccessDenied:
        return True
    return False


@pytest.mark.check("KZ-62-05", "user management: a user added by the administrator is listed and logs in with the "
                   "rights given; once deleted it is gone from the list and cannot log in")
def test_user_lifecycle(dut, check):
    spec = amr_spec(dut)
    role = next((r for r, ops in spec.roles.items()
                 if AmrOperation.READ_METERS in ops and AmrOperation.MANAGE_USERS not in ops), None)
    if role is None:
        raise Inconclusive(Msg("the profile declares no role that reads meters but may not manage users"))
    session = admin(dut)
    try:
        with temporary_user(dut, session, role) as (user, password):
            check.measure(Msg("new {role} user listed", role=role), user.name in {u.name for u in session.users()},
                          passed=user.name in {u.name for u in session.users()}, limit=Msg("listed by GET users"))
            own = dut.device.login(user.name, password)
            try:
                check.measure(Msg("new {role} user reads meters", role=role), len(own.meters()), unit="meters",
                              passed=True, limit=Msg("allowed (read_meters)"))
                refused = _refused(own.users)
                check.measure(Msg("new {role} user manages users", role=role),
                              Msg("refused") if refused else Msg("allowed"), passed=refused,
                              limit=Msg("refused (not in its role)"))
            finally:
                own.close()
            session.delete_user(user.name)
            listed = user.name in {u.name for u in session.users()}
            check.measure(Msg("deleted user listed"), Msg("listed") if listed else Msg("gone"), passed=not listed,
                          limit=Msg("gone"))
            refused = _refused(lambda: dut.device.login(user.name, password).close())
            check.measure(Msg("deleted user logs in"), Msg("refused") if refused else Msg("logged in"),
                          passed=refused, limit=Msg("refused (401)"))
    finally:
        session.close()
    check.require()
