"""The simulated controller itself, protocol aside: configuration, clock, process, accounts, audit
log and firmware, and what a write, a method call or a control-channel request does to them.

Configuration (setpoints, parameters, pump state) and the battery-backed clock live in the fsynced
NVM (``nvm.json``, simulators/nvstate.py) and survive power cuts and rollbacks; accounts, audit
log and firmware slots have their own files (users.py, audit.py, slots.py). Every decision on a
write or call — role, range, outcome — is taken here and logged before it is answered; server.py
only translates OPC UA to these calls.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from asyncua import ua

from harness.simulators.control import advance_seconds
from harness.simulators.controller.access import DeviceUser, RoleTable
from harness.simulators.controller.audit import SHORT_CAPACITY_DIVISOR, SYSTEM, AuditLog
from harness.simulators.controller.auth import Authenticator, TrustList
from harness.simulators.controller.process_model import FACTORY_CONFIG, HeatingCircuit
from harness.simulators.controller.profile import ControllerProfile, Point
from harness.simulators.controller.update import DeviceIdentity, Refused, SoftwareUpdate
from harness.simulators.controller.users import LockoutTracker, UserFile, UserStore
from harness.simulators.controller.vendor_kit import vendor_kit
from harness.simulators.nvstate import NvStore
from harness.simulators.timeline import Timeline

DAY = 86400.0
GOOD = 0
CONTROL_ACTIONS = {"start_pump": "pump started", "stop_pump": "pump stopped",
                   "acknowledge_alarms": "alarms acknowledged"}


class Controller:
    def __init__(self, profile: ControllerProfile, state_dir: Path, defects: set[str], serial: str,
                 firmware: str, users: list[tuple[str, str, str]], trusted: list[tuple[bytes, str]]) -> None:
        self.profile, self.state_dir, self.defects = profile, state_dir, defects
        self.nvm = NvStore(state_dir)
        saved = self.nvm.load()
        factory = {n: FACTORY_CONFIG.get(n, p.range[0] if p.range else 0.0) for n, p in profile.points.items()
                   if p.kind in ("setpoint", "parameter")}
        if saved is None:
            self.serial = serial
            self.timeline = Timeline.fresh(profile.utc_offset_s)
            config, pump = dict(factory), True
        else:
            self.serial = saved["serial"]
            self.timeline = Timeline.from_state(saved["timeline"], drift=0.0)
            config, pump = {**factory, **saved["config"]}, bool(saved["pump_running"])
        self.factory_config = factory
        self.circuit = HeatingCircuit(config=config, pump_running=pump, last=self.timeline.physical())
        self.alarm_latched = False
        self.nodes: dict[ua.NodeId, Point] = {}  # filled by the server once namespaces are known
        self.namespace_index = -1

        audit = profile.audit
        capacity = audit.capacity if audit else 10000
        if "log_capacity_short" in defects:  # the log's memory is a fraction of what the profile declares
            capacity = max(1, capacity // SHORT_CAPACITY_DIVISOR)
        self.audit = AuditLog(state_dir, capacity, volatile="log_volatile" in defects,
                              record_user="log_missing_user" not in defects)
        self.roles = RoleTable(profile.roles, defects)
        self.accounts = UserStore(UserFile(state_dir))
        for name, password, role in users:
            self.accounts.ensure(name, password, role)
        trust = TrustList()
        for der, role in trusted:
            trust.add(der, role or self.roles.first())
        identities = set(profile.identities)
        self.auth = Authenticator(
            self.accounts, LockoutTracker(profile.lockout, enabled="auth_no_lockout" not in defects), trust,
            self.roles, identities, none_policy_allowed="None" in profile.policies or "auth_accepts_none_policy"
            in defects, defects=defects, now=self.timeline.physical, log=self._logger("Session"))
        spec = profile.update
        kit = vendor_kit(state_dir, profile.vendor, profile.model, firmware, spec.min_version if spec else None,
                         spec.signature if spec else "ed25519")
        self.update = SoftwareUpdate(spec, state_dir, kit.trust_anchor, DeviceIdentity(profile.vendor, profile.model),
                                     defects, now=self.timeline.physical, log=self._logger("SoftwareUpdate"),
                                     on_rollback=self._after_rollback) if spec else None
        if self.update is not None:
            self.update.power_on(kit.factory_image)
        self.firmware = firmware
        self.persist()

    # ---- time --------------------------------------------------------------------------------------
    def utc_now(self) -> float:
        """The device clock (RTC) as UTC seconds."""
        return self.timeline.rtc() - self.profile.utc_offset_s

    def clock_value(self) -> datetime:
        return datetime.fromtimestamp(self.utc_now(), UTC)

    # ---- audit --------------------------------------------------------------------------------------
    def log(self, kind: str, user: str, outcome: bool, message: str, subject: str = "Controller",
            old: Any = None, new: Any = None) -> None:
        self.audit.record(kind, self.utc_now(), user, outcome, subject, message, old, new)

    def _logger(self, subject: str) -> Callable[..., None]:
        def log(kind: str, user: str, outcome: bool, message: str, old: Any = None, new: Any = None) -> None:
            self.log(kind, user, outcome, message, subject, old, new)
        return log

    # ---- NVM ------------------------------------------------------------------------------------------
    def persist(self) -> None:
        self.nvm.save({"serial": self.serial, "timeline": self.timeline.to_state(), "config": self.circuit.config,
                       "pump_running": self.circuit.pump_running})

    def _after_rollback(self) -> None:
        """A rollback keeps the configuration — except on a device with update_rollback_loses_config."""
        if "update_rollback_loses_config" in self.defects:
            self.circuit.config = dict(self.factory_config)
            self.persist()

    # ---- points -------------------------------------------------------------------------------------
    def owns(self, node: ua.NodeId) -> bool:
        return node.NamespaceIndex == self.namespace_index

    def point_at(self, node: ua.NodeId) -> Point | None:
        return self.nodes.get(node)

    @property
    def running_version(self) -> str:
        return self.update.running_version if self.update is not None else self.firmware

    def read_point(self, point: Point) -> Any:
        """A point's value now (process values advanced to this moment of device time)."""
        if point.kind == "identity":
            return self.running_version if point.name == self._version_point() else self.serial
        if point.kind == "clock":
            return self.clock_value()
        if point.kind in ("setpoint", "parameter"):
            return float(self.circuit.setting(point.name))
        self.circuit.advance_to(self.timeline.physical())
        return self.circuit.values(self.timeline.rtc()).get(point.name, 0.0)

    def _serial_writable(self, point: Point, user: DeviceUser | None) -> bool:
        """Defect identity_writable: the serial number stays writable after commissioning, for any role that
        may change parameters (the stack's administrator bypass of a node's access level)."""
        return "identity_writable" in self.defects and point.kind == "identity" and \
            point.name != self._version_point() and isinstance(user, DeviceUser) and \
            self.roles.allows(user.device_role, "write_parameter")

    def _version_point(self) -> str:
        return self.profile.update.running_version if self.profile.update else "firmware_version"

    def write_point(self, point: Point, value: Any, user: DeviceUser | None) -> int:
        """A client's write of a point: role, type and range checked, applied, logged. A status code."""
        who = user.name or "" if user else ""
        operation = point.operation
        if operation is None and self._serial_writable(point, user):
            old_serial, self.serial = self.serial, str(value)
            self.persist()
            self.log("settings_change", who, True, f"serial number {old_serial} -> {self.serial}",
                     subject=point.name, old=old_serial, new=self.serial)
            return GOOD
        if operation is None or (point.kind == "clock" and not self.profile.raw.get("clock", {}).get("writable")):
            return ua.StatusCodes.BadNotWritable
        if not self.roles.allows(user.device_role if user else None, operation):
            self.log("security_event", who, False, f"write of {point.name} refused: role "
                     f"{user.device_role if user else '(none)'} may not {operation}", subject=point.name)
            return self._denied(ua.StatusCodes.BadNotWritable)
        if point.kind == "clock":
            return self._set_clock(value, who)
        if isinstance(value, str) and "write_wrong_type_accepted" in self.defects:
            value = _lenient_number(value)
            if value is None:
                return GOOD  # acknowledged, dropped
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            return ua.StatusCodes.BadTypeMismatch
        old = float(self.circuit.setting(point.name))
        if "update_config_write_ignored" in self.defects and self.running_version != self.firmware:
            return GOOD  # the updated firmware acknowledges configuration writes and drops them
        if point.range and not point.range[0] <= value <= point.range[1]:
            self.log("settings_change", who, False, f"{point.name} := {value:g} refused: outside "
                     f"[{point.range[0]:g}, {point.range[1]:g}]", subject=point.name, old=old, new=float(value))
            return ua.StatusCodes.BadOutOfRange
        self.circuit.advance_to(self.timeline.physical())
        self.circuit.config[point.name] = float(value)
        self.persist()
        self.log("settings_change", who, True, f"{point.name} changed from {old:g} to {value:g}", subject=point.name,
                 old=old, new=float(value))
        return GOOD

    def _denied(self, as_defect: int) -> int:
        """The status of a refusal for the role: Bad_UserAccessDenied, or with defect access_denied_wrong_status
        the node's access answer (``as_defect``) — still a refusal, but not the one that names the user's right."""
        return as_defect if "access_denied_wrong_status" in self.defects else ua.StatusCodes.BadUserAccessDenied

    def _set_clock(self, value: Any, who: str) -> int:
        if not isinstance(value, datetime):
            return ua.StatusCodes.BadTypeMismatch
        old = self.clock_value()
        new = value if value.tzinfo else value.replace(tzinfo=UTC)
        self.timeline.set_rtc(new.timestamp() + self.profile.utc_offset_s)
        self.persist()
        self.log("settings_change", who, True, "device clock set", subject="clock", old=old.isoformat(),
                 new=new.isoformat())
        return GOOD

    # ---- methods ---------------------------------------------------------------------------------------
    def call(self, name: str, operation: str, user: DeviceUser | None, action: Callable[[str], None]) -> int:
        """A method call: the role must grant ``operation``; ``action(user_name)`` does the work and logs it."""
        who = user.name or "" if user else ""
        if not self.roles.allows(user.device_role if user else None, operation):
            self.log("security_event", who, False, f"call of {name} refused: role "
                     f"{user.device_role if user else '(none)'} may not {operation}", subject=name)
            return self._denied(ua.StatusCodes.BadNotExecutable)
        try:
            action(who)
        except Refused as refused:
            return refused.code
        return GOOD

    def control_action(self, name: str, who: str) -> None:
        self.circuit.advance_to(self.timeline.physical())
        if name == "start_pump":
            self.circuit.pump_running = True
        elif name == "stop_pump":
            self.circuit.pump_running = False
        self.persist()
        self.log("control_action", who, True, CONTROL_ACTIONS.get(name, f"{name} executed"), subject=name)

    def clear_log(self, who: str) -> None:
        self.audit.clear(self.utc_now(), who)

    # ---- the device running by itself ------------------------------------------------------------------
    def tick(self) -> None:
        """Process, alarms, update deadlines; called a few times a second."""
        self.circuit.advance_to(self.timeline.physical())
        over = self.circuit.over_limit()
        if over and not self.alarm_latched:
            limit = self.circuit.setting("high_temperature_limit")
            self.log("alarm", SYSTEM, True, f"supply temperature {self.circuit.supply_c:.1f} °C above the limit "
                     f"{limit:g} °C", subject="supply_temperature", new=round(self.circuit.supply_c, 2))
        self.alarm_latched = over  # raised once per excursion above the limit
        if self.update is not None:
            self.update.tick()

    # ---- control channel (simulators only) -----------------------------------------------------------
    async def control(self, req: dict[str, Any]) -> dict[str, Any]:
        op = str(req.get("op"))
        if op == "advance":
            seconds = advance_seconds(req)
            self.timeline.advance(seconds)
            self.persist()
            self.tick()
        elif op == "alarm":
            self.log("alarm", SYSTEM, True, str(req.get("message") or req.get("name") or "alarm"),
                     subject=str(req.get("name", "alarm")))
        elif op == "synthesize_events":
            return {"ok": True, "generated": self.synthesize(float(req["days"]), req.get("per_day")),
                    **self.status()}
        elif op != "status":
            raise ValueError(f"unknown op {op!r}; ops: status, advance, alarm, synthesize_events")
        return {"ok": True, **self.status()}

    def synthesize(self, days: float, per_day: Any = None) -> int:
        """``days`` of device time pass with the controller's routine actions logged at the declared rate:
        a year of audit history in well under a second (for the 12-month retention check)."""
        rate = float(per_day) if per_day is not None else float(self.profile.audit.events_per_day
                                                                if self.profile.audit else 100)
        if not 0 < days <= 400 or not 0 < rate <= 10000:
            raise ValueError("synthesize_events takes 0 < days <= 400 and 0 < per_day <= 10000")
        n, start = math.floor(days * rate), self.utc_now()
        step = DAY / rate
        made = self.audit.record_many(("control_action", start + (i + 1) * step, SYSTEM, True, "Process",
                                       "scheduled circulation pump changeover") for i in range(n))
        self.timeline.advance(days * DAY)
        self.persist()
        self.tick()
        return made

    def status(self) -> dict[str, Any]:
        return {"physical": self.timeline.physical(), "rtc_local": self.timeline.rtc(), "utc": self.utc_now(),
                "serial": self.serial, "firmware": self.update.status() if self.update else {"running": self.firmware},
                "audit_entries": len(self.audit), "pump_running": self.circuit.pump_running,
                "defects": sorted(self.defects)}

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.persist()
        self.audit.close()


def _lenient_number(text: str) -> float | None:
    """Defect write_wrong_type_accepted: the firmware's text-to-number conversion of a written String (decimal
    comma allowed); None when it does not parse."""
    try:
        return float(text.strip().replace(",", "."))
    except ValueError:
        return None
