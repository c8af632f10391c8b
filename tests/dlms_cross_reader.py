"""An independent DLMS client for the tests: gurux-dlms (GPLv2, a test-time cross-reader only — the harness
package never imports it). It reads the simulated meter over the TCP wrapper with its own A-XDR, BER and
date-time code, so a misreading shared by the simulator and the harness's driver would show as a mismatch."""

from __future__ import annotations

import socket
from datetime import datetime
from typing import Any


class GuruxReader:
    """One LLS (or public) association with gurux's client, on a socket of its own; closed by ``close``."""

    def __init__(self, port: int, client_sap: int, password: bytes | None, server: int = 1) -> None:
        from gurux_dlms import GXDLMSClient, GXReplyData
        from gurux_dlms.enums import Authentication, InterfaceType

        self.sock = socket.create_connection(("127.0.0.1", port), timeout=2)
        self.client = GXDLMSClient(True, client_sap, server, Authentication.LOW if password else Authentication.NONE,
                                   password, InterfaceType.WRAPPER)
        reply = GXReplyData()
        self._block(self.client.aarqRequest(), reply)
        self.client.parseAareResponse(reply.data)

    def _packet(self, data: Any, reply: Any) -> None:
        from gurux_dlms import GXByteBuffer, GXReplyData

        reply.error = 0
        self.sock.sendall(bytes(data))
        received = GXByteBuffer()
        for _ in range(1000):
            if self.client.getData(received, reply, GXReplyData()):
                return
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("the meter closed the connection")
            received.set(chunk)
        raise TimeoutError("no complete answer")

    def _block(self, data: Any, reply: Any) -> None:
        if isinstance(data, list):
            for item in data:
                reply.clear()
                self._block(item, reply)
            return
        self._packet(data, reply)
        while reply.isMoreData():
            self._packet(self.client.receiverReady(reply), reply)

    def _read(self, obj: Any, attribute: int) -> None:
        from gurux_dlms import GXReplyData

        reply = GXReplyData()
        self._block(self.client.read(obj, attribute), reply)
        self.client.updateValue(obj, attribute, reply.value)

    def register(self, obis: str) -> tuple[float, int]:
        """The register's value scaled by its scaler_unit, and its DLMS unit code."""
        from gurux_dlms.objects import GXDLMSRegister

        reg = GXDLMSRegister(obis)
        self._read(reg, 3)
        self._read(reg, 2)
        return float(reg.value) * float(reg.scaler), int(reg.unit)

    def data(self, obis: str) -> Any:
        from gurux_dlms.objects import GXDLMSData

        item = GXDLMSData(obis)
        self._read(item, 2)
        return item.value

    def clock(self, obis: str = "0.0.1.0.0.255") -> datetime:
        from gurux_dlms.objects import GXDLMSClock

        clock = GXDLMSClock(obis)
        self._read(clock, 2)
        return clock.time.value

    def close(self) -> None:
        self.sock.close()

    def profile_rows(self, obis: str, start: datetime, end: datetime,
                     clock_obis: str = "0.0.1.0.0.255") -> tuple[list[tuple[int, str, int]], list[list[Any]]]:
        """A Profile generic's capture objects (class, logical name, attribute) and its buffer by a range of its
        clock column, as gurux reads and decodes them (its own range descriptor, blocks and A-XDR)."""
        from gurux_dlms.objects import GXDLMSClock, GXDLMSProfileGeneric

        pg = GXDLMSProfileGeneric(obis)
        self._read(pg, 3)
        pg.sortObject = GXDLMSClock(clock_obis)
        return self._rows(pg, self.client.readRowsByRange(pg, start, end))

    def profile_entries(self, obis: str, first: int, count: int) -> tuple[list[tuple[int, str, int]], list[list[Any]]]:
        """As ``profile_rows``, by entry: ``count`` entries from entry ``first`` (counted from 1)."""
        from gurux_dlms.objects import GXDLMSProfileGeneric

        pg = GXDLMSProfileGeneric(obis)
        self._read(pg, 3)
        return self._rows(pg, self.client.readRowsByEntry(pg, first, count))

    def profile_counts(self, obis: str) -> tuple[int, int, int]:
        """capture_period (attribute 4), entries_in_use (7) and profile_entries (8) of a Profile generic."""
        from gurux_dlms.objects import GXDLMSProfileGeneric

        pg = GXDLMSProfileGeneric(obis)
        for attribute in (4, 7, 8):
            self._read(pg, attribute)
        return int(pg.capturePeriod), int(pg.entriesInUse), int(pg.profileEntries)

    def _rows(self, pg: Any, request: Any) -> tuple[list[tuple[int, str, int]], list[list[Any]]]:
        from gurux_dlms import GXReplyData

        reply = GXReplyData()
        self._block(request, reply)
        self.client.updateValue(pg, 2, reply.value)
        columns = [(int(o.objectType), o.logicalName, int(a.attributeIndex)) for o, a in pg.captureObjects]
        return columns, [list(row) for row in pg.buffer]
