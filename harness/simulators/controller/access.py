"""Who may do what: roles from the profile, enforced on every write and method call of a session.

asyncua knows only Admin/User/Anonymous and per-node access levels; a controller needs the
profile's roles (``roles: {operator: [read, write_setpoint, control]}``). Two injection points that
asyncua offers make that possible without patching it: the InternalServer (``Server(iserver=…)``)
creates our ``ControllerSession`` for every client, whose ``write``/``read``/``call`` see the
session's user. Writes of the device's points go to the device (role check, range check, audit
log) and never reach the address space; method handlers read the caller from ``CURRENT_USER``,
which ``call`` sets for the duration of the call (same task, so contextvars carry it).
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from asyncua import ua
from asyncua.common.utils import ServiceError
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.server.internal_server import InternalServer
from asyncua.server.internal_session import InternalSession

if TYPE_CHECKING:
    from harness.simulators.controller.device import Controller

@dataclass
class DeviceUser(User):
    """An authenticated user of the controller: asyncua's User plus the device role."""

    device_role: str = ""
    identity: str = "username"  # username | certificate | anonymous


# Defect unknown_node_wrong_status: what a tag-table lookup that fails answers for a node that does not exist.
_UNKNOWN_NODE = ua.StatusCodes.BadInternalError

CURRENT_USER: ContextVar[DeviceUser | None] = ContextVar("current_user", default=None)
TOKEN_KIND: ContextVar[str] = ContextVar("token_kind", default="")


def device_user(name: str, role: str, identity: str = "username") -> DeviceUser:
    return DeviceUser(role=UserRole.User, name=name, device_role=role, identity=identity)


class RoleTable:
    """role -> operations, with the seeded defects' extra grants."""

    def __init__(self, roles: dict[str, frozenset[str]], defects: set[str]) -> None:
        self.roles = {r: set(ops) for r, ops in roles.items()}
        for ops in self.roles.values():
            if "role_viewer_can_write" in defects and ops == {"read"}:
                ops.add("write_setpoint")
            if "log_clearable_by_operator" in defects and "control" in ops:
                ops.add("manage_log")

    def allows(self, role: str | None, operation: str) -> bool:
        return role is not None and operation in self.roles.get(role, set())

    def least_privileged(self) -> str:
        """The role with the fewest operations (given to anonymous users where they are let in)."""
        return min(self.roles, key=lambda r: len(self.roles[r]))

    def most_privileged(self) -> set[str]:
        """The roles with the most operations (whose accounts defect auth_ignores_password lets in unchecked)."""
        most = max((len(ops) for ops in self.roles.values()), default=0)
        return {r for r, ops in self.roles.items() if len(ops) == most}

    def first(self) -> str:
        return next(iter(self.roles))


class ControllerSession(InternalSession):
    """A client's session: the device decides on its own points, asyncua on everything else."""

    @property
    def device(self) -> Controller:
        return self.iserver.device  # type: ignore[attr-defined, no-any-return]

    def _device_user(self) -> DeviceUser | None:
        return self.user if isinstance(self.user, DeviceUser) else None

    def activate_session(self, params: ua.ActivateSessionParameters,
                         peer_certificate: bytes | None) -> ua.ActivateSessionResult:
        token = params.UserIdentityToken
        kind = "username" if isinstance(token, ua.UserNameIdentityToken) else \
            "certificate" if isinstance(token, ua.X509IdentityToken) else "anonymous"
        reset = TOKEN_KIND.set(kind)
        try:
            return super().activate_session(params, peer_certificate)
        except ServiceError as exc:
            if exc.code in (ua.StatusCodes.BadIdentityTokenRejected, ua.StatusCodes.BadIdentityTokenInvalid):
                name = getattr(token, "UserName", None) or kind
                self.device.auth.token_refused(name, kind, ua.StatusCode(exc.code).name)
            raise
        finally:
            TOKEN_KIND.reset(reset)

    async def read(self, params: ua.ReadParameters) -> list[ua.DataValue]:
        results = await super().read(params)
        if "unknown_node_wrong_status" in self.device.defects:
            results = [ua.DataValue(StatusCode=ua.StatusCode(_UNKNOWN_NODE)) if rv.NodeId not in self.iserver.aspace
                       else dv for rv, dv in zip(params.NodesToRead, results, strict=True)]
        user = self._device_user()
        if user is None or self.device.roles.allows(user.device_role, "read"):
            return results
        denied = ua.DataValue(StatusCode=ua.StatusCode(ua.StatusCodes.BadUserAccessDenied))
        return [denied if self.device.owns(rv.NodeId) else dv
                for rv, dv in zip(params.NodesToRead, results, strict=True)]

    async def history_read(self, params: ua.HistoryReadParameters) -> list[ua.HistoryReadResult]:
        user = self._device_user()
        if user is not None and not self.device.roles.allows(user.device_role, "read"):
            return [ua.HistoryReadResult(StatusCode=ua.StatusCode(ua.StatusCodes.BadUserAccessDenied))
                    for _ in params.NodesToRead]
        return await super().history_read(params)

    async def write(self, params: ua.WriteParameters) -> list[ua.StatusCode]:
        results = []
        for item in params.NodesToWrite:
            if item.NodeId not in self.iserver.aspace:  # Part 4: an unknown node is unknown, whoever asks (ua_status)
                results.append(ua.StatusCode(_UNKNOWN_NODE if "unknown_node_wrong_status" in self.device.defects
                                             else ua.StatusCodes.BadNodeIdUnknown))
                continue
            point = self.device.point_at(item.NodeId)
            if point is None or item.AttributeId != ua.AttributeIds.Value:
                results += await super().write(ua.WriteParameters(NodesToWrite=[item]))
                continue
            value = item.Value.Value.Value if item.Value is not None and item.Value.Value is not None else None
            results.append(ua.StatusCode(self.device.write_point(point, value, self._device_user())))
        return results

    async def call(self, params: list[ua.CallMethodRequest]) -> list[ua.CallMethodResult]:
        reset = CURRENT_USER.set(self._device_user())
        try:
            return await super().call(params)
        finally:
            CURRENT_USER.reset(reset)


class ControllerInternalServer(InternalServer):
    """Makes every client session a ControllerSession and lets it reach the device."""

    device: Controller

    def create_session(self, name: str, user: User = User(role=UserRole.Anonymous),  # noqa: B008 (asyncua's own)
                       external: bool = False) -> InternalSession:
        return ControllerSession(self, self.aspace, self.subscription_service, name, user=user, external=external)

    async def load_standard_address_space(self, shelf_file: Path | None = None) -> None:
        """asyncua's fill of the standard nodes, or its result from the cache (standard_space.py)."""
        from harness.simulators.controller import standard_space

        path = standard_space.cache_path() if shelf_file is None else None
        nodes = standard_space.load(path) if path else None
        if nodes is not None:
            self.aspace._nodes = nodes  # what asyncua's AddressSpace.load does
            return
        await super().load_standard_address_space(shelf_file)
        if path:
            standard_space.store(path, self.aspace._nodes)

