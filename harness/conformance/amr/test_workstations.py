"""cl. 62 workstations: each role the profile declares (administrator, operator, subscriber …) gets exactly its
functions — every operation of the role × operation matrix is tried as a user of that role; a granted one works,
any other is refused. Probes change nothing: corrections are tried on a reading and a correction that do not exist
(a granted role is told "not found", a refused one "forbidden"); a manual reading only adds a reading."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from harness.config.amr import AmrOperation, ReportKind
from harness.conformance.amr.field_truth import admin, amr_spec, field_meters, temporary_user
from harness.devices.amr.api import AmrAccessDenied, AmrNotFound, AmrSession
from harness.devices.api import DeviceError
from harness.reporting.outcome import exc_text
from harness.reporting.texts import Msg

pytestmark = pytest.mark.dut_kind("amr_server")

NO_SUCH = "harness-no-such-id"


def _probes(session: AmrSession, meter: str, fmt: str) -> dict[AmrOperation, Callable[[], object]]:
    end = datetime.now(UTC)
    return {
        AmrOperation.READ_METERS: session.meters,
        AmrOperation.READ_READINGS: lambda: session.readings(meter),
        AmrOperation.MANUAL_READ: lambda: session.request_reading(meter),
        AmrOperation.EXPORT: lambda: session.export(fmt, end - timedelta(minutes=1), end),
        AmrOperation.MANAGE_USERS: session.users,
        AmrOperation.PROPOSE_CORRECTION: lambda: session.propose_correction(NO_SUCH, 0.0, "harness role probe"),
        AmrOperation.CONFIRM_CORRECTION: lambda: session.confirm_correction(NO_SUCH),
        AmrOperation.READ_AUDIT: session.audit,
        AmrOperation.REPORTS: lambda: session.report(ReportKind.ELECTRICITY.value, end - timedelta(minutes=1), end),
    }


def _outcome(probe: Callable[[], object]) -> tuple[Msg, str]:
    """("allowed" | "refused" | "error", detail): not-found on a probe of nothing counts as allowed."""
    try:
        probe()
    except AmrAccessDenied as exc:
        return Msg("refused"), exc_text(exc)
    except AmrNotFound:
        return Msg("allowed"), Msg("not found (the probe's id does not exist)")
    except DeviceError as exc:
        return Msg("error"), exc_text(exc)
    return Msg("allowed"), ""


@pytest.mark.check("KZ-62-06", "workstations: each declared role (admin, operator, subscriber) can do exactly the "
                   "operations of the profile's role × operation matrix and is refused every other")
def test_role_matrix(dut, check):
    spec, meters = amr_spec(dut), field_meters(dut)
    meter = next(iter(meters))
    fmt = spec.export_formats[0].value if spec.export_formats else "csv"
    session = admin(dut)
    try:
        for role, granted in spec.roles.items():
            scope = [meter] if role == spec.subscriber_role else []
            with temporary_user(dut, session, role, scope) as (user, password):
                own = dut.device.login(user.name, password)
                try:
                    for operation, probe in _probes(own, meter, fmt).items():
                        got, detail = _outcome(probe)
                        want = Msg("allowed") if operation in granted else Msg("refused")
                        check.measure(Msg("{role}: {operation}", role=role, operation=operation.value), got,
                                      passed=got == want, limit=want,
                                      note=detail if got != want else "")
                finally:
                    own.close()
    finally:
        session.close()
    check.require()
