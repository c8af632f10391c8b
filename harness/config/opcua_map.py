"""How a profile describes an OPC UA device: endpoint, security, points, methods, roles, audit log, update.

Everything that differs between OPC UA controllers — node ids, the security policies and
identities they accept, which role may do what, how their audit log is read and what its
categories are called, how firmware reaches them — is declared here, so the driver and the
suites never assume one device's address space (docs/opcua.md is the contract). Node strings are
OPC UA NodeId text (``ns=2;s=X``, ``nsu=URI;s=X``, ``i=2253``) or a browse path from Objects
(``/2:Controller/2:Setpoint``); the driver resolves them once per session.

Only names are checked here, not asyncua's classes: loading a profile must stay cheap (`harness
check`), and tests/test_opcua_config.py proves every policy name below is one asyncua implements.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, ValidationInfo, field_validator, model_validator

from harness.config.modbus_types import Strict
from harness.config.point_names import FreePointName, check_point_name
from harness.events import AuditKind
from harness.quantities import CLOCK, UNIT_FACTORS

# NodeId text as OPC UA Part 6 writes it (with the `nsu=` form), or a browse path of `[ns:]Name` steps.
_NODE_ID = re.compile(r"^(?:(?:ns=\d+|nsu=[^;]+);)?(?:i=\d+|s=.+|g=[0-9a-fA-F-]{36}|b=[A-Za-z0-9+/=]+)$")
_BROWSE_PATH = re.compile(r"^(?:/(?:\d+:)?[^/]+)+$")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_SEMVER = re.compile(r"^\d+(?:\.\d+){0,3}$")

# Units a controller's process values carry that harness.quantities.UNIT_FACTORS has no conversion
# for: they are passed through as declared (a ramp rate in K/min is compared in K/min).
PROCESS_UNITS = ("K", "K/min", "K/h", "%", "bar", "kPa", "Pa", "s", "min", "h", "rpm", "Hz", "V", "A")


def check_node(value: str) -> str:
    """A NodeId text or a browse path; anything else is a typo the driver would only find on the bench."""
    if not (_NODE_ID.match(value) or _BROWSE_PATH.match(value)):
        raise ValueError(f"{value!r} is not a node: write NodeId text (ns=2;s=Name, nsu=URI;s=Name, i=2253) "
                         "or a browse path from Objects (/2:Controller/2:Setpoint)")
    return value


Node = Annotated[str, AfterValidator(check_node)]


class SecurityPolicy(StrEnum):
    """Security policies by their OPC UA names (the fragment of the policy URI)."""

    NONE = "None"
    BASIC128RSA15 = "Basic128Rsa15"
    BASIC256 = "Basic256"
    BASIC256SHA256 = "Basic256Sha256"
    AES128_SHA256_RSAOAEP = "Aes128_Sha256_RsaOaep"
    AES256_SHA256_RSAPSS = "Aes256_Sha256_RsaPss"

    @property
    def uri(self) -> str:
        return f"http://opcfoundation.org/UA/SecurityPolicy#{self.value}"


class SecurityMode(StrEnum):
    NONE = "None"
    SIGN = "Sign"
    SIGN_AND_ENCRYPT = "SignAndEncrypt"


class IdentityKind(StrEnum):
    """User identity tokens a device accepts (OPC UA Part 4, 7.36)."""

    ANONYMOUS = "anonymous"
    USERNAME = "username"
    CERTIFICATE = "certificate"


class Operation(StrEnum):
    """What a role may do: the fixed vocabulary the access-control suites reason in."""

    READ = "read"
    WRITE_SETPOINT = "write_setpoint"
    WRITE_PARAMETER = "write_parameter"
    CONTROL = "control"
    FIRMWARE = "firmware"
    MANAGE_LOG = "manage_log"
    MANAGE_USERS = "manage_users"


class PointKind(StrEnum):
    """What a point is, which says whether and with which operation it may be written."""

    IDENTITY = "identity"
    CLOCK = "clock"
    PROCESS_VALUE = "process_value"
    SETPOINT = "setpoint"
    PARAMETER = "parameter"

    @property
    def write_operation(self) -> Operation | None:
        """The operation a write of such a point needs; None: the point is read-only.

        Setting the clock is a parameter change (cl. 69 logs it as a settings change)."""
        return {PointKind.SETPOINT: Operation.WRITE_SETPOINT, PointKind.PARAMETER: Operation.WRITE_PARAMETER,
                PointKind.CLOCK: Operation.WRITE_PARAMETER}.get(self)


class Lockout(Strict):
    """What the device does after repeated failed logins (cl. 66/76)."""

    after_failures: int = Field(ge=1, le=100, description="failed attempts in a row that trigger it")
    kind: Literal["lock", "delay"] = Field(description="lock: the account is locked; delay: answers slow down")
    duration_s: float = Field(gt=0, le=86400, description="how long the lock or delay lasts")


class FactoryCredential(Strict):
    """A user name and password a device ships with, as its vendor documents it (KZ-76-03 tries it)."""

    user: str = Field(min_length=1)
    password: str


class OpcuaSecurity(Strict):
    """The endpoints a device offers: policies × modes, identity tokens, lockout."""

    policies: list[SecurityPolicy] = Field(min_length=1, description="declared policies; None only if listed")
    modes: list[SecurityMode] = Field(min_length=1)
    identities: list[IdentityKind] = Field(min_length=1, description="anonymous only if the device allows it")
    lockout: Lockout | None = None
    default_credentials: list[FactoryCredential] = Field(
        default_factory=list, description="factory accounts the vendor's documents name; none may log in once "
        "commissioned (tried besides the common factory defaults)")
    anonymous_role: str | None = Field(None, description="the declared role an anonymous session gets (default: "
                                       "the least privileged); only with identity anonymous")
    certificate_role: str | None = Field(None, description="the declared role the harness's trusted certificate "
                                         "gets as user identity, so its rows can be checked without a password "
                                         "account; only with identity certificate")

    @model_validator(mode="after")
    def _check(self) -> OpcuaSecurity:
        for name, values in (("policies", self.policies), ("modes", self.modes), ("identities", self.identities)):
            if len(set(values)) != len(values):
                raise ValueError(f"{name} lists a value twice")
        if (SecurityPolicy.NONE in self.policies) != (SecurityMode.NONE in self.modes):
            raise ValueError("policy None and mode None go together: list both or neither")
        if self.secure_policies and not self.secure_modes:
            raise ValueError("a policy other than None needs mode Sign or SignAndEncrypt")
        if self.secure_modes and not self.secure_policies:
            raise ValueError("modes Sign/SignAndEncrypt need a policy other than None")
        if self.anonymous_role is not None and IdentityKind.ANONYMOUS not in self.identities:
            raise ValueError("anonymous_role needs identity anonymous in `identities`")
        if self.certificate_role is not None and IdentityKind.CERTIFICATE not in self.identities:
            raise ValueError("certificate_role needs identity certificate in `identities`")
        return self

    @property
    def secure_policies(self) -> list[SecurityPolicy]:
        return [p for p in self.policies if p != SecurityPolicy.NONE]

    @property
    def secure_modes(self) -> list[SecurityMode]:
        return [m for m in self.modes if m != SecurityMode.NONE]


class OpcuaPoint(Strict):
    """One canonical quantity at one node."""

    node: Node
    kind: PointKind
    unit: str | None = Field(None, description="unit of the node's value: one of harness.quantities.UNIT_FACTORS "
                             "(converted to the canonical unit) or a process unit (passed through)")
    range: tuple[float, float] | None = Field(None, description="[low, high] the device accepts (setpoints, "
                                              "parameters)")

    @model_validator(mode="after")
    def _check(self) -> OpcuaPoint:
        if self.unit is not None and self.unit not in UNIT_FACTORS and self.unit not in PROCESS_UNITS:
            known = ", ".join([*UNIT_FACTORS, *PROCESS_UNITS])
            raise ValueError(f"unit {self.unit!r} unknown; expected one of {known}")
        if self.range is not None:
            if self.kind not in (PointKind.SETPOINT, PointKind.PARAMETER):
                raise ValueError(f"range applies to setpoints and parameters, not to a {self.kind.value} point")
            if self.range[0] >= self.range[1]:
                raise ValueError(f"range {list(self.range)} is empty: write [low, high] with low < high")
        if self.kind in (PointKind.IDENTITY, PointKind.CLOCK) and self.unit is not None:
            raise ValueError(f"a {self.kind.value} point has no unit")
        return self

    @property
    def writable(self) -> bool:
        """Implied by the kind: setpoints, parameters and the clock are written, the rest only read."""
        return self.kind.write_operation is not None

    @property
    def factor(self) -> float:
        """Multiplier from the node's value to the canonical unit (1 for process units)."""
        return UNIT_FACTORS[self.unit][1] if self.unit in UNIT_FACTORS else 1.0

    @property
    def canonical_unit(self) -> str | None:
        return UNIT_FACTORS[self.unit][0] if self.unit in UNIT_FACTORS else self.unit


class OpcuaMethod(Strict):
    """A method: the object it is called on, the method node, and the operation it needs."""

    object: Node
    method: Node
    kind: Operation = Field(description="the operation a caller's role must grant")
    undo: str | None = Field(None, description="the declared method that puts back what this one does "
                             "(stop_pump for start_pump): checks act on a plant only where they can undo it")
    sets: dict[str, bool | int | float | str] = Field(
        default_factory=dict, description="points this method sets, and to what (pump_running: true), so a "
        "check can tell which of a pair changes the present state")


class AuditFields(Strict):
    """Canonical field -> the event property (BrowseName, e.g. ClientUserId) that carries it."""

    time: str = Field("Time", description="when it happened (BaseEventType.Time unless said otherwise)")
    category: str = Field(description="the device's category string, mapped to a canonical kind by `kinds`")
    user: str | None = Field(None, description="who did it")
    outcome: str | None = Field(None, description="Boolean: true = the action succeeded")
    subject: str | None = Field(None, description="what it was done to")
    old: str | None = None
    new: str | None = None


class AuditLog(Strict):
    """The control-system event log (cl. 69): where its events come from and what they mean."""

    source: Node = Field(description="node the audit events are emitted from and historized on")
    event_type: Node = Field(description="the device's audit event type (a subtype of AuditEventType)")
    fields: AuditFields
    kinds: dict[AuditKind, str] = Field(description="canonical kind -> the device's category string")
    read: Literal["history"] = Field("history", description="history: HistoryRead of events on `source`")
    clear: OpcuaMethod | None = Field(None, description="how the log is cleared, if it can be")
    capacity: int | None = Field(None, ge=1, le=100_000_000, description="events the log holds")
    events_per_day: int | None = Field(None, ge=0, le=100_000, description="declared typical event rate "
                                       "(sizes retention; KZ-69-04 synthesizes a year of them)")
    timestamp_tolerance_s: float = Field(2.0, ge=0, le=3600, description="an entry's time may lie this far outside "
                                         "the device-clock window around the action it records")

    @model_validator(mode="after")
    def _check(self) -> AuditLog:
        categories = list(self.kinds.values())
        twice = sorted({c for c in categories if categories.count(c) > 1})
        if twice:
            raise ValueError(f"category {twice[0]!r} is mapped to two kinds: each category means one kind")
        return self

    def kind_of(self, category: object) -> AuditKind | None:
        """The canonical kind of a device category, or None when the profile does not map it."""
        for kind, code in self.kinds.items():
            if code == category:
                return kind
        return None


class UpdateMethods(Strict):
    """The software-update methods (after the OPC UA DI software-update model), on `update.object`."""

    transfer: Node = Field(description="Transfer(data: ByteString, offset: UInt32, total: UInt32)")
    install: Node = Field(description="Install(): verify and write the transferred image to the inactive slot")
    activate: Node = Field(description="Activate(): boot the installed image")
    confirm: Node | None = Field(None, description="Confirm(): keep the activated image (else: rollback)")
    rollback: Node | None = Field(None, description="Rollback(): back to the previous image")


UPDATE_STATES = ("Idle", "Transferring", "Transferred", "Installing", "Installed", "Activating", "Confirming",
                 "RolledBack", "Failed")


class OpcuaUpdate(Strict):
    """How firmware reaches the device (cl. 70)."""

    object: Node
    methods: UpdateMethods
    state: Node = Field(description="String node: " + "|".join(UPDATE_STATES))
    running_version: str = Field(description="the point (by name) that shows the running version")
    previous_version: Node | None = Field(None, description="node: the version a rollback returns to")
    available_version: Node | None = Field(None, description="node: the 'new version available' indication")
    image_format: str = Field(min_length=1, description="the firmware-image injector that knows this format")
    signature: Literal["ed25519", "ecdsa-p256"]
    min_version: str | None = Field(None, description="the lowest version the device accepts")
    below_min_version: Literal["refuse", "allow"] = "refuse"
    health_check_s: float = Field(gt=0, le=3600, description="after activate: unconfirmed or unhealthy → "
                                  "automatic rollback within this")
    chunk_bytes: int = Field(65536, ge=16, le=16 * 1024 * 1024, description="transfer chunk size the device "
                             "accepts")

    @field_validator("min_version")
    @classmethod
    def _version(cls, v: str | None) -> str | None:
        if v is not None and not _SEMVER.match(v):
            raise ValueError(f"{v!r} is not a version like 2.0.0")
        return v


class Absent(StrEnum):
    """What a device may declare it does not have — honestly, so that a check judges the absence against the Rules
    (a Rules-required feature declared absent FAILs its check, it does not make it N/A)."""

    LOCKOUT = "lockout"  # no lock or delay after failed logins (KZ-76-02)
    AUDIT_LOG = "audit_log"  # no control-system event log (cl. 69)
    PASSWORD_CHECK = "password_check"  # any password opens an account (KZ-76-01)
    CONNECTION_LIMIT = "connection_limit"  # no bound on UA-TCP connections at once (robustness KZ-49-03)


class OpcuaMap(Strict):
    """The `opcua:` section of a profile."""

    endpoint_path: str = Field("", description="path of the endpoint URL; the rig gives host and port")
    namespace_uri: str = Field(min_length=1, description="the device's namespace (node ids may say nsu=<uri>)")
    security: OpcuaSecurity
    points: dict[FreePointName, OpcuaPoint] = Field(
        min_length=1, description="canonical quantity (identity, clock, heat quantities) or the device's own "
        "name of a process value, setpoint or parameter -> node")
    methods: dict[str, OpcuaMethod] = Field(default_factory=dict)
    roles: dict[str, list[Operation]] = Field(default_factory=dict, description="role -> operations it may "
                                              "perform (everything else is refused)")
    audit_log: AuditLog | None = None
    update: OpcuaUpdate | None = None
    max_connections: int | None = Field(
        None, ge=1, le=4096, description="UA-TCP connections the server takes at once; further ones may be "
        "closed at once, never lock it up (suite robustness, KZ-49-03/04)")
    response_time_s: float | None = Field(
        None, gt=0, le=60, description="the longest a service request may take to answer (the robustness checks' "
        "bound; default: the rig's request_timeout_s)")
    absent: list[Absent] = Field(default_factory=list, description="features the device declares it does not have: "
                                 "lockout, audit_log, password_check, connection_limit")

    @model_validator(mode="after")
    def _absent(self) -> OpcuaMap:
        present = {Absent.LOCKOUT: self.security.lockout, Absent.AUDIT_LOG: self.audit_log,
                   Absent.CONNECTION_LIMIT: self.max_connections}
        for feature in self.absent:
            if present.get(feature) is not None:
                raise ValueError(f"absent lists {feature.value}, which the profile also declares: one or the other")
        for field, role in (("anonymous_role", self.security.anonymous_role),
                            ("certificate_role", self.security.certificate_role)):
            if role is not None and role not in self.roles:
                raise ValueError(f"security.{field} names role {role!r}, which `roles` does not declare")
        return self

    @field_validator("endpoint_path")
    @classmethod
    def _path(cls, v: str) -> str:
        if v and (not v.startswith("/") or any(c.isspace() for c in v)):
            raise ValueError(f"{v!r} is not a URL path: write it from the first slash, e.g. /tek/pc1")
        return v

    @field_validator("roles")
    @classmethod
    def _roles(cls, v: dict[str, list[Operation]]) -> dict[str, list[Operation]]:
        for role, ops in v.items():
            if not _NAME.match(role):
                raise ValueError(f"role {role!r}: write role names in lower case (administrator, operator)")
            if not ops:
                raise ValueError(f"role {role} may do nothing: list its operations")
            if len(set(ops)) != len(ops):
                raise ValueError(f"role {role} lists an operation twice")
        return v

    @field_validator("points")
    @classmethod
    def _clock(cls, v: dict[str, OpcuaPoint]) -> dict[str, OpcuaPoint]:
        for name, point in v.items():
            if (name == CLOCK) != (point.kind == PointKind.CLOCK):
                raise ValueError(f"point {name}: the device clock is the point named `{CLOCK}`, of kind clock")
            if point.kind == PointKind.IDENTITY:
                check_point_name(name)  # the certificate names the DUT by the canonical identity quantities
        return v

    @field_validator("methods")
    @classmethod
    def _undo(cls, v: dict[str, OpcuaMethod], info: ValidationInfo) -> dict[str, OpcuaMethod]:
        points = info.data.get("points") or {}
        for name, method in v.items():
            if method.undo is not None and method.undo not in v:
                raise ValueError(f"method {name}: undo names {method.undo!r}, which `methods` does not declare")
            unknown = [p for p in method.sets if p not in points]
            if unknown:
                raise ValueError(f"method {name}: sets {', '.join(unknown)}, not declared in `points`")
        return v

    @field_validator("update")
    @classmethod
    def _running_version(cls, v: OpcuaUpdate | None, info: ValidationInfo) -> OpcuaUpdate | None:
        points = info.data.get("points")  # validated before `update` (field order); absent if it failed
        if v is not None and points is not None and v.running_version not in points:
            raise ValueError(f"running_version names point {v.running_version!r}, which `points` does not declare")
        return v

    def roles_allowing(self, operation: Operation) -> list[str]:
        """Roles that may perform ``operation``, least privileged first (fewest operations, then by name: never the
        order the profile lists them in)."""
        return sorted((r for r, ops in self.roles.items() if operation in ops), key=lambda r: (len(self.roles[r]), r))

    def settings(self) -> list[str]:
        """Points a write changes the device's configuration with (setpoints and parameters)."""
        return [n for n, p in self.points.items() if p.kind in (PointKind.SETPOINT, PointKind.PARAMETER)]
