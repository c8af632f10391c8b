"""Software update of an OPC UA device (cl. 70), through the methods its profile declares.

After the OPC UA DI software-update model, reduced to what the update suite needs: transfer an
image in chunks, install it, activate it, confirm or roll back, and read where the device stands
(state, running / previous / available version). Method signatures (docs/opcua.md):
``Transfer(data: ByteString, offset: UInt32, total: UInt32)``, ``Install()``, ``Activate()``,
``Confirm()``, ``Rollback()`` — all called on ``update.object``, all needing the ``firmware``
operation. Refusals surface as DeviceRefused with the device's status, so a check can tell an
image the device rejected (BadSecurityChecksFailed, …) from one it accepted.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from harness.config.opcua_map import OpcuaUpdate, Operation
from harness.devices.api import DeviceError, NotDeclared
from harness.reporting.texts import Msg

if TYPE_CHECKING:
    from harness.devices.opcua import OpcuaDevice

POLL_S = 0.1


class FirmwareUpdate:
    def __init__(self, device: OpcuaDevice, spec: OpcuaUpdate) -> None:
        self.device = device
        self.spec = spec

    def _call(self, method: str | None, name: str, args: tuple[Any, ...] = (), role: str | None = None,
              budget_s: float | None = None) -> Any:
        if method is None:
            raise NotDeclared(Msg("{device}: profile {model} declares no update method {name} "
                                  "(opcua.update.methods.{name})", device=self.device.name,
                                  model=self.device.profile.model, name=name))
        slot = self.device._slot(Operation.FIRMWARE, role)
        return self.device._call_node(slot, self.spec.object, method, args, f"update {name}", budget_s=budget_s)

    def transfer(self, image: bytes, role: str | None = None, chunk_bytes: int | None = None) -> int:
        """Send ``image`` in chunks of ``update.chunk_bytes`` (offset, total with each); the number of chunks.
        A refused chunk raises DeviceRefused naming its offset."""
        return sum(1 for _ in self.transfer_chunks(image, role, chunk_bytes))

    def transfer_chunks(self, image: bytes, role: str | None = None,
                        chunk_bytes: int | None = None) -> Iterator[tuple[int, int]]:
        """``transfer`` one chunk per step: yields (bytes sent so far, total) after each chunk the device took,
        so a check can act in the middle of a transfer (a power cut after the first chunk)."""
        size = chunk_bytes or self.spec.chunk_bytes
        total = len(image)
        for offset in range(0, max(total, 1), size):
            data = image[offset:offset + size]
            try:
                self._call(self.spec.methods.transfer, "transfer", (data, offset, total), role)
            except DeviceError as exc:
                exc.args = (f"{exc.args[0]} (chunk at offset {offset} of {total})", *exc.args[1:])
                raise
            yield offset + len(data), total

    def install(self, role: str | None = None) -> Any:
        # verifying a signature over a large image takes the device a moment: a longer bound than a read
        return self._call(self.spec.methods.install, "install", role=role, budget_s=self.device.timeout * 10)

    def activate(self, role: str | None = None) -> Any:
        return self._call(self.spec.methods.activate, "activate", role=role, budget_s=self.device.timeout * 10)

    def confirm(self, role: str | None = None) -> Any:
        return self._call(self.spec.methods.confirm, "confirm", role=role)

    def rollback(self, role: str | None = None) -> Any:
        return self._call(self.spec.methods.rollback, "rollback", role=role, budget_s=self.device.timeout * 10)

    def state(self) -> str:
        return str(self._read(self.spec.state))

    def running_version(self) -> str:
        return str(self.device.read(self.spec.running_version).value)

    def previous_version(self) -> str | None:
        return None if self.spec.previous_version is None else _text(self._read(self.spec.previous_version))

    def available_version(self) -> str | None:
        return None if self.spec.available_version is None else _text(self._read(self.spec.available_version))

    def wait_state(self, wanted: Iterable[str], timeout_s: float) -> str | None:
        """Poll the state until it is one of ``wanted``; the state reached, or None after ``timeout_s``.
        A device that is down meanwhile (rebooting into the new image) is polled on."""
        goal = set(wanted)
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                state = self.state()
                if state in goal:
                    return state
            except DeviceError:
                pass  # activating: the device may be away for a moment
            if time.monotonic() >= deadline:
                return None
            time.sleep(POLL_S)

    def _read(self, node: str) -> Any:
        return self.device._read_node(self.device._slot(Operation.READ, None), node)


def _text(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)
