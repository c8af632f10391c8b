"""What the ``amr`` suite may ask of an AMR server: meters, readings, exports, users, corrections, audit, reports,
their archive and analytics.

An AMR server is not a meter, so it does not go through ``Device.read``: it has an interface of its
own, beside ``Device``. The built-in adapter (``rest.py``) speaks the contract in docs/amr-api.yaml; a
vendor maps its own API onto this interface in an adapter registered through ``harness_add_drivers``
(protocol ``amr``, or a protocol name of its own that the profile's section selects).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime

from harness.devices.api import DeviceError


class AmrContractViolation(DeviceError):
    """The server answered something the contract does not allow (a missing field, a wrong type, a wrong status)."""


class AmrAccessDenied(DeviceError):
    """The server refused the request: wrong login (401) or an operation the user's role may not do (403)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class AmrNotFound(DeviceError):
    """The server knows no such meter, user or correction (404)."""


@dataclass(frozen=True)
class MeterStatus:
    meter_id: str
    active: bool
    last_reading_time: datetime | None
    communication_ok: bool | None = None  # the server's diagnostics of its link to the meter; None: not reported
    communication_error: str | None = None


@dataclass(frozen=True)
class AmrReading:
    """One stored reading: the value the server read, in ``unit``, stamped with the time it was read."""

    reading_id: str
    meter_id: str
    quantity: str
    value: float
    unit: str
    reading_time: datetime
    source: str  # auto | manual
    original_value: float | None = None  # the value as read, once a confirmed correction has changed it


@dataclass(frozen=True)
class AmrUser:
    name: str
    role: str
    meters: list[str] = field(default_factory=list)  # the meters a subscriber may read; empty: by role


@dataclass(frozen=True)
class Correction:
    correction_id: str
    reading_id: str
    status: str  # proposed | confirmed
    old_value: float
    new_value: float
    reason: str
    proposed_by: str
    confirmed_by: str | None


@dataclass(frozen=True)
class AuditEntry:
    time: datetime
    user: str
    action: str
    details: dict[str, object]


@dataclass(frozen=True)
class MeterConsumption:
    """One meter's line of a report: its consumption over the period (last reading's value minus first's) in
    ``unit``; None when the server has no reading of it in the period."""

    meter_id: str
    consumption: float | None
    unit: str | None


@dataclass(frozen=True)
class ConsumptionReport:
    """A report of one kind (electricity, heat) over ``[start, end)``: each meter's consumption and the total in
    ``unit``. ``document`` is the report as the server answered it (what an archive's hash is taken over)."""

    kind: str
    start: datetime
    end: datetime
    unit: str
    meters: list[MeterConsumption]
    total: float
    document: dict[str, object]


@dataclass(frozen=True)
class ArchivedReport:
    archive_id: str
    report: ConsumptionReport


@dataclass(frozen=True)
class ConsumptionAnalytics:
    """Analytics of one kind over a period, in ``unit``: the total, the meters that consumed most and least
    (meter id, consumption) and the dynamics (UTC date -> consumption that day)."""

    kind: str
    unit: str
    total: float
    maximum: tuple[str, float] | None
    minimum: tuple[str, float] | None
    dynamics: list[tuple[str, float]]


class AmrSession(ABC):
    """One logged-in user. Every call raises ``AmrAccessDenied`` when the server refuses it."""

    user: str

    @abstractmethod
    def meters(self) -> list[MeterStatus]: ...

    @abstractmethod
    def readings(self, meter_id: str, since: datetime | None = None) -> list[AmrReading]: ...

    @abstractmethod
    def request_reading(self, meter_id: str) -> None:
        """Ask for a manual reading of one meter now (the reading itself arrives later, see ``readings``)."""

    @abstractmethod
    def export(self, fmt: str, start: datetime, end: datetime) -> bytes:
        """The readings of ``[start, end)`` the user may see, as a file in ``fmt`` (csv: RFC 4180)."""

    @abstractmethod
    def users(self) -> list[AmrUser]: ...

    @abstractmethod
    def add_user(self, user: AmrUser, password: str) -> None: ...

    @abstractmethod
    def delete_user(self, name: str) -> None: ...

    @abstractmethod
    def propose_correction(self, reading_id: str, new_value: float, reason: str) -> Correction: ...

    @abstractmethod
    def confirm_correction(self, correction_id: str) -> Correction: ...

    @abstractmethod
    def reading(self, reading_id: str) -> AmrReading:
        """One reading as it stands now (with any confirmed correction applied)."""

    @abstractmethod
    def audit(self) -> list[AuditEntry]: ...

    @abstractmethod
    def report(self, kind: str, start: datetime, end: datetime) -> ConsumptionReport:
        """The consumption report of ``kind`` over ``[start, end)`` for the meters the user may see."""

    @abstractmethod
    def archive_report(self, kind: str, start: datetime, end: datetime) -> ArchivedReport:
        """Archive the report of ``kind`` over the period; the archived report as the server keeps it."""

    @abstractmethod
    def archived_report(self, archive_id: str) -> ArchivedReport: ...

    @abstractmethod
    def alter_archived_report(self, archive_id: str, document: dict[str, object]) -> bool:
        """Try to replace an archived report with ``document``: True when the server accepted it (an archive
        must refuse), False when it refused."""

    @abstractmethod
    def analytics(self, kind: str, start: datetime, end: datetime) -> ConsumptionAnalytics: ...

    def close(self) -> None:  # noqa: B027 - a session without a logout has nothing to do
        """Log out (where the server has a logout) and free the connection."""


class AmrServer(ABC):
    """An AMR server as the ``amr`` suite sees it."""

    def __init__(self, name: str) -> None:
        self.name = name

    @abstractmethod
    def probe(self) -> None:
        """Raise ``DeviceError`` unless the server answers (used to wait for a launched server)."""

    @abstractmethod
    def health(self) -> dict[str, object]:
        """The server's own health (cl. 77): at least ``status`` ("ok" when it is well)."""

    @abstractmethod
    def login(self, user: str, password: str) -> AmrSession:
        """A session of ``user``; ``AmrAccessDenied`` for a wrong login."""

    def close(self) -> None:  # noqa: B027 - an adapter that holds nothing has nothing to free
        """Free whatever the adapter holds."""
