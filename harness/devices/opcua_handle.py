"""A session as a suite holds it (``OpcuaDevice.session(...)``): every read, write, call and browse runs under
its identity and endpoint, through the device's bounded, recorded exchanges."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from harness.devices.api import NotDeclared, Reading
from harness.devices.opcua_session import LiveSession, SessionAttempt
from harness.devices.opcua_values import check_status, to_device
from harness.reporting.texts import Msg

if TYPE_CHECKING:
    from harness.devices.opcua import OpcuaDevice
    from harness.devices.opcua_session import Slot


class Session:
    """An open session as a suite holds it: everything runs under this session's identity and endpoint."""

    def __init__(self, device: OpcuaDevice, slot: Slot, attempt: SessionAttempt) -> None:
        self.device = device
        self._slot = slot
        self.attempt = attempt

    def read(self, quantity: str) -> Reading:
        return self.device._read_points(self._slot, [quantity])[quantity]

    def read_many(self, quantities: Sequence[str]) -> dict[str, Reading]:
        return self.device._read_points(self._slot, quantities)

    def read_node(self, node: str) -> Any:
        """Any node (NodeId text or browse path), plain Python value."""
        return self.device._read_node(self._slot, node)

    def write(self, quantity: str, value: float | int | str) -> None:
        """Write a declared point — also one not declared writable: a refusal is what a negative check wants."""
        point = self.device._point(quantity)
        self.device._write_node(self._slot, point.node, to_device(point, value), f"write of {quantity}")

    def write_node(self, node: str, value: Any, as_type: str | None = None) -> None:
        """``as_type``: an OPC UA built-in type name (String, Boolean, …) to send the value as, whatever the
        node's data type — what a type-mismatch check sends."""
        self.device._write_node(self._slot, node, value, f"write of {node}", as_type)

    def call(self, method_name: str, *args: Any) -> Any:
        method = self.device.map.methods.get(method_name)
        if method is None:
            raise NotDeclared(Msg("{device}: profile declares no method {method_name!r}", device=self.device.name,
                                  method_name=method_name))
        return self.device._call_node(self._slot, method.object, method.method, args, f"call of {method_name}")

    def input_arguments(self, method_node: str) -> int:
        """How many input arguments a method declares (its InputArguments property; 0 without one): what a
        check needs to call it with the wrong number on purpose."""
        from harness.devices.opcua_values import input_types

        async def work(live: LiveSession) -> int:
            return len(await input_types(live, await live.node_id(method_node)) or [])

        return int(self.device._exchange("browse", self._slot, work, node=method_node)[0])

    def call_node(self, object_node: str, method_node: str, *args: Any) -> Any:
        return self.device._call_node(self._slot, object_node, method_node, args, f"call of {method_node}")

    def browse(self, node: str | None = None) -> list[dict[str, str]]:
        """Children of ``node`` (default: Objects): browse name, node id and node class of each."""
        async def work(live: LiveSession) -> list[dict[str, str]]:
            from asyncua import ua

            nid = await live.node_id(node) if node else ua.NodeId(ua.ObjectIds.ObjectsFolder)
            desc = ua.BrowseDescription(NodeId=nid, BrowseDirection=ua.BrowseDirection.Forward,
                                        ReferenceTypeId=ua.NodeId(ua.ObjectIds.HierarchicalReferences),
                                        IncludeSubtypes=True, ResultMask=ua.BrowseResultMask.All)
            result = (await live.client.uaclient.browse(ua.BrowseParameters(NodesToBrowse=[desc])))[0]
            check_status(result.StatusCode, f"browse of {node or 'Objects'}")  # asyncua's helpers drop it
            return [{"browse_name": r.BrowseName.to_string(), "node": r.NodeId.to_string(),
                     "node_class": r.NodeClass.name} for r in result.References]

        return self.device._exchange("browse", self._slot, work, node=node or "Objects")[0]
