"""An AMR server's profile section (``amr:``): its REST API, roles, exports and declared timings.

An AMR server (АСКУЭ head-end) is not a meter: it reads a field of meters and hands their data on.
What differs between servers — where the API lives, how a client logs in, which role may do what,
which export formats it offers, how fast it polls, notices a dead meter and answers a manual
reading — is declared here, so the ``amr`` suite assumes nothing of the golden server's.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import Field, model_validator

from harness.config.modbus_types import Strict


class AmrOperation(StrEnum):
    """What a workstation may do on the server (the rows of the role × operation matrix)."""

    READ_METERS = "read_meters"          # list meters and their status
    READ_READINGS = "read_readings"      # readings of the meters in the user's scope
    MANUAL_READ = "manual_read"          # request a reading now
    EXPORT = "export"                    # readings as a file in a standard format
    MANAGE_USERS = "manage_users"        # view, add, edit, delete users and their rights
    PROPOSE_CORRECTION = "propose_correction"
    CONFIRM_CORRECTION = "confirm_correction"
    READ_AUDIT = "read_audit"
    REPORTS = "reports"                  # consumption reports, their archive and analytics (of the user's scope)


class ExportFormat(StrEnum):
    CSV = "csv"  # RFC 4180
    XLSX = "xlsx"  # Office Open XML workbook (ECMA-376), read with openpyxl
    IEC_61968_9 = "iec61968-9"  # IEC 61968-9 MeterReadings XML (namespace http://iec.ch/TC57/2011/MeterReadings#)


class ReportKind(StrEnum):
    """The consumption reports a server offers: one per kind of field meter it reads."""

    ELECTRICITY = "electricity"
    HEAT = "heat"

    @property
    def meter_kind(self) -> str:
        return {"electricity": "electricity_meter", "heat": "heat_meter"}[self.value]


class AmrLogin(Strict):
    """How a client logs in: the contract's ``POST {base_path}/login`` with a user and password, answered by a
    bearer token (docs/amr-api.yaml). A vendor's own scheme belongs in its adapter."""

    scheme: str = Field("bearer", pattern=r"^bearer$", description="bearer: POST login, then Authorization: Bearer")


class AmrTimings(Strict):
    """What the server declares about time; the checks take their limits from here."""

    poll_interval_s: float = Field(gt=0, le=86400, description="the automatic reading interval the server is set to")
    inactive_detection_s: float = Field(gt=0, le=86400, description="longest time from a meter going dead to the "
                                        "server showing it inactive (and back to active after it returns)")
    fault_detection_s: float | None = Field(
        None, gt=0, le=86400, description="longest time from a meter's link failing to the server showing a "
        "communication fault, and from its return to the fault clearing (cl. 77); default inactive_detection_s")
    manual_read_s: float = Field(gt=0, le=3600, description="longest time from a manual reading request to the "
                                 "fresh reading being available")
    response_time_s: float | None = Field(
        None, gt=0, le=600, description="longest time the API takes to answer a read (the meter list), also under "
        "the robustness campaigns (cl. 49); default the rig's timing.request_timeout_s")


class AmrSoakPoll(Strict):
    """What one poll of the availability soak (cl. 67, 73) asks of the server: one read-only operation of the
    contract, answered within the declared response time — an answer later than that is a poll the head-end's
    client has given up on, so the soak counts it unanswered."""

    operation: Literal["health", "meters"] = Field(
        "meters", description="health: GET /health (no login); meters: the meter list with its status, as the "
        "admin_role's account (logged in once, before the soak)")
    response_time_s: float = Field(gt=0, le=60, description="longest time the server takes to answer one poll")


class AmrSpec(Strict):
    """The ``amr:`` section of an ``amr_server`` profile."""

    adapter: str = Field("amr", pattern=r"^[a-z][a-z0-9_.-]*$", description="the driver that talks to this server: "
                         "`amr` is the built-in adapter of docs/amr-api.yaml; a vendor's adapter registers its own "
                         "name through harness_add_drivers")
    base_path: str = Field("/api/v1", pattern=r"^/[A-Za-z0-9._~/-]*$", description="path prefix of the REST API")
    login: AmrLogin = Field(default_factory=AmrLogin)
    roles: dict[str, list[AmrOperation]] = Field(
        min_length=1, description="role name -> the operations it may do; every other operation must be refused")
    admin_role: str = Field(description="the role that manages users (the harness logs in with it)")
    subscriber_role: str | None = Field(None, description="the role that reads only its own meters (cl. 18-21)")
    confirmer_role: str | None = Field(None, description="the role that confirms corrections (cl. 48)")
    export_formats: list[ExportFormat] = Field(default_factory=list)
    reports: list[ReportKind] = Field(default_factory=list, description="the consumption reports per period the "
                                      "server offers (and archives): electricity, heat")
    analytics: bool = Field(False, description="the server offers consumption analytics over a period (total, "
                            "maximum, minimum, per-day dynamics)")
    timings: AmrTimings
    availability_poll: AmrSoakPoll | None = Field(
        None, description="the read-only operation the availability soak polls (cl. 67, 73); without it the soak "
        "has nothing declared to poll")
    max_connections: int | None = Field(None, ge=1, le=100_000, description="HTTP connections the server serves "
                                        "at once (cl. 49 connection storm: up to it served, past it refused or "
                                        "answered 503, every one freed when closed)")
    reading_quantities: dict[str, str] = Field(
        default_factory=lambda: {"electricity_meter": "active_import_total", "heat_meter": "heat_energy"},
        description="meter kind -> the quantity the server reads and reports for meters of that kind")

    @model_validator(mode="after")
    def _check(self) -> AmrSpec:
        for field in ("admin_role", "subscriber_role", "confirmer_role"):
            role = getattr(self, field)
            if role is not None and role not in self.roles:
                raise ValueError(f"{field} {role!r} is not one of the declared roles ({', '.join(self.roles)})")
        if AmrOperation.MANAGE_USERS not in self.roles[self.admin_role]:
            raise ValueError(f"admin_role {self.admin_role!r} may not manage_users in the declared matrix")
        return self

    def may(self, role: str, operation: AmrOperation) -> bool:
        return operation in self.roles.get(role, [])
