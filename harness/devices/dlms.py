"""DLMS/COSEM driver (IEC 62056) over the TCP wrapper or HDLC on a serial line, on ``dlms-cosem``.

Reads go through the profile's reading association (``dlms.reads_with``), the clock and settings are set
through its configurator (``dlms.writes_with``); each association is opened once and kept, re-opened after
a broken link, with the rig's timeout and retries as the Modbus driver has them. ``read_many`` is one
GET-with-list (atomic: a total and its tariffs come from one instant), reassembled from blocks when the
answer is longer than the negotiated PDU. A class 3 Register is scaled by the scaler_unit the device
reports, which must agree with the profile: a register that says something else is refused as a
DeviceError (the suites then FAIL it) rather than read on trust.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from harness.config.dlms_map import (
    CLASS_CLOCK,
    CLASS_REGISTER,
    DLMS_UNITS,
    Authentication,
    CosemObject,
    DlmsMap,
    SecurityPolicy,
    obis_bytes,
)
from harness.config.profile import Profile
from harness.config.rig import Dut, Timing
from harness.devices.api import (
    ClockReading,
    Device,
    DeviceError,
    DeviceRefused,
    DeviceTimeout,
    DeviceUnreachable,
    NotDeclared,
    Reading,
)
from harness.devices.cosem_values import decode_datetime, encode_datetime, encode_value
from harness.devices.dlms_buffers import BufferReader
from harness.devices.dlms_link import COUNTERS_LOCK, INVOCATION_COUNTERS, AssociationRefused, DlmsLink
from harness.devices.dlms_results import AccessResult, dar_name, data_result, reassembled
from harness.devices.transcript import Transcript
from harness.events import JournalEntry
from harness.intervals import IntervalData
from harness.quantities import EnergyRegister, to_canonical
from harness.reporting.texts import Msg

LIST_HEADER, DESCRIPTOR_BYTES = 5, 10  # GET-request-with-list: tag, choice, invoke id, count; one descriptor each
# A ciphered request is its plain APDU inside general-glo-ciphering (Green Book 9.2.7.2.4): tag, system title
# (1 + 8), the content's length (at most 3), security control (1), invocation counter (4) and the GCM tag (12);
# the meter's max PDU bounds the whole of it.
CIPHERING_OVERHEAD = 1 + 9 + 3 + 1 + 4 + 12
# dlms-cosem 25.1 writes general-glo-ciphering's content length as one byte (GeneralGlobalCipher.to_bytes), wrong
# A-XDR from 128 bytes on (a meter refuses it) and an error from 256: a ciphered request's plain APDU stays below
# 128 - (1 + 4 + 12) bytes.
LIBRARY_CIPHERED_PLAIN_MAX = 127 - (1 + 4 + 12)
MAX_BLOCKS = 256  # a long GET longer than this many blocks is a meter that never says "last"


class DlmsDevice(Device):
    """A DLMS/COSEM meter reached over the TCP wrapper or, on a serial line, over HDLC (``dlms_hdlc``)."""

    def __init__(self, name: str, profile: Profile, dut: Dut, timing: Timing,
                 transcript: Transcript | None = None, endpoint: dict[str, Any] | None = None) -> None:
        super().__init__(name, profile)
        if profile.dlms is None:
            raise NotDeclared(Msg("profile {model} has no dlms section", model=profile.model))
        self.map: DlmsMap = profile.dlms
        self._dut = dut
        endpoint = endpoint or {}
        self.line: Any = None  # HDLC: the serial line the device's connections share
        if dut.transport.serial is not None:
            from harness.devices.dlms_hdlc import HdlcLine

            port = str(endpoint.get("serial_port", dut.transport.serial.port))
            self.line, self.where = HdlcLine(port, dut.transport.serial), (port, 0)
        else:
            tcp = dut.transport.tcp
            assert tcp is not None
            self.where = (str(endpoint.get("host", tcp.host)), int(endpoint.get("port", tcp.port)))
        self.timeout, self.retries, self.transcript = timing.request_timeout_s, timing.retries, transcript
        self._links: dict[str, DlmsLink] = {}
        self._counters = INVOCATION_COUNTERS  # role -> our next invocation counter, shared by the process's Devices
        self._counter_noted: set[str] = set()  # ciphered roles without a counter object, said in the transcript
        self._scalers: dict[str, tuple[int, int]] = {}  # quantity -> (scaler, unit) as the device reported them
        self._plans: dict[tuple[str, ...], list[tuple[list[tuple[str, CosemObject]], list[Any]]]] = {}
        self._buffers = BufferReader(self)

    # ---- associations ------------------------------------------------------------------------------
    def password_of(self, role: str) -> bytes | None:
        assoc = self.map.associations[role]
        if assoc.authentication == Authentication.NONE:
            return None
        cred = self._dut.credentials.get(assoc.credential or "")
        if cred is None or not cred.password:
            raise DeviceError(Msg("{device}: association {role!r} uses LLS with credential {credential!r}, which the "
                                  "rig does not give (duts.{device}.credentials.{credential})", device=self.name,
                                  role=role, credential=assoc.credential))
        return cred.password.encode()

    def keys_of(self, role: str) -> tuple[bytes, bytes] | None:
        """A ciphered association's (encryption key, authentication key) from the rig's credentials."""
        assoc = self.map.associations[role]
        if assoc.security == SecurityPolicy.NONE:
            return None
        if assoc.security != SecurityPolicy.AUTHENTICATED_ENCRYPTED:
            raise DeviceError(Msg("{device}: association {role!r}: security {security} is not supported by the driver "
                                  "(dlms-cosem ciphers authenticated_encrypted only)", device=self.name, role=role,
                                  security=assoc.security.value))
        cred = self._dut.credentials.get(assoc.credential or "")
        if cred is None or not cred.encryption_key or not cred.authentication_key:
            raise DeviceError(Msg("{device}: association {role!r} is ciphered with credential {credential!r}, which "
                                  "gives no keys (duts.{device}.credentials.{credential}: encryption_key, "
                                  "authentication_key)", device=self.name, role=role, credential=assoc.credential))
        return bytes.fromhex(cred.encryption_key), bytes.fromhex(cred.authentication_key)

    def open_link(self, role: str, password: bytes | None = None, *, receive_pdu: int | None = None,
                  aarq: Callable[[Any], Any] | None = None, keys: tuple[bytes, bytes] | None = None,
                  hls_reply: Callable[[bytes], bytes] | None = None) -> DlmsLink:
        """A new association as ``role`` (the caller closes it); ``password`` overrides the rig's, ``receive_pdu``
        the PDU size proposed, ``aarq`` the request itself (negative checks). AssociationRefused when the meter
        rejects it."""
        assoc = self.map.associations[role]
        hls = assoc.authentication == Authentication.HLS_GMAC
        secret = password if password is not None else (None if hls else self.password_of(role))
        keys = keys or self.keys_of(role)
        if keys is not None:
            self.continue_invocation_counter(role)
        link = DlmsLink(self.name, self.where, self.map.server_logical_address, assoc.client_sap, role, secret,
                        self.map.max_pdu_size, self.timeout, self.transcript, receive_pdu,
                        keys=keys, hls=hls, counters=self._counters, carrier=self.carrier(assoc.client_sap))
        try:
            link.open(aarq, hls_reply)
        except AssociationRefused as exc:
            if keys is None or assoc.invocation_counter is not None:
                raise
            raise AssociationRefused(Msg(
                "{refusal} (the profile declares no invocation_counter for {role!r}: the driver counted from "
                "{start} in this run, and a meter that remembers a higher counter from an earlier run refuses it)",
                refusal=str(exc), role=role, start=link.connection_start), exc.code) from None
        return link

    def continue_invocation_counter(self, role: str) -> None:
        """Before a ciphered association: read the meter's record of the last invocation counter it accepted from
        ``role`` (the profile's ``invocation_counter`` object, through an unciphered association) and continue
        above it, so that a new run (a new process, a fresh Device) is not refused as a replay (Green Book
        9.2.7.4). Without the object the process's own counter goes on (from 1 in a new run), said once in the
        transcript."""
        assoc = self.map.associations[role]
        if assoc.invocation_counter is None:
            if role not in self._counter_noted and self.transcript is not None:
                self.transcript.record(self.name, op="invocation-counter", association=role,
                                       note="the profile declares no invocation_counter object: continuing from "
                                            "this process's own counter (1 in a new run)")
            self._counter_noted.add(role)
            return
        reader = self.map.counter_reader(role)
        assert reader is not None  # the profile's validation
        link = self.open_link(reader)
        try:
            value = self.get_on(link, [self.attribute(1, assoc.invocation_counter, 2)])[0]
        finally:
            link.close()
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**32:
            raise DeviceError(Msg("{device}: association {role!r}: its invocation counter {obis}, read as {reader}, "
                                  "gave {value} instead of a double-long-unsigned", device=self.name, role=role,
                                  obis=assoc.invocation_counter, reader=reader, value=str(value)))
        if value == 2**32 - 1:
            raise DeviceError(Msg("{device}: association {role!r}: the meter has accepted invocation counter "
                                  "{value} (the last there is): its keys must be renewed before it can be used",
                                  device=self.name, role=role, value=value))
        with COUNTERS_LOCK:
            self._counters[role] = max(self._counters.get(role, 1), value + 1)

    def carrier(self, client_sap: int) -> Any:
        """An HDLC connection on the device's serial line as ``client_sap`` (None: the TCP wrapper's socket)."""
        if self.line is None:
            return None
        from harness.devices.dlms_hdlc import HdlcCarrier

        return HdlcCarrier(self.line, self.map.server_logical_address, self.map.hdlc.physical_address, client_sap,
                           self.timeout)

    def try_association(self, role: str, *, ciphered_context: bool = False, mechanism: int | None = None) -> int | None:
        """Ask for an association as ``role`` with an application context (LN with ciphering) or an authentication
        mechanism (by its id) other than the declared one; None when the meter accepts it (released at once), else
        the AARE's diagnostic."""
        from dlms_cosem import enumerations
        from dlms_cosem.protocol import acse, xdlms

        def request(conn: Any) -> Any:
            return acse.ApplicationAssociationRequest(
                ciphered=ciphered_context, system_title=conn.client_system_title,
                authentication=enumerations.AuthenticationMechanism(mechanism) if mechanism is not None else None,
                authentication_value=bytes(range(0x30, 0x40)) if mechanism is not None else None,
                user_information=acse.UserInformation(content=xdlms.InitiateRequest(
                    proposed_conformance=conn.conformance, client_max_receive_pdu_size=self.map.max_pdu_size)))

        try:
            self.open_link(role, b"", aarq=request).close()
        except AssociationRefused as exc:
            return exc.code
        return None

    def wrong_password(self, role: str) -> bytes:
        """A password of the same length as the rig's for ``role`` that is not it (every byte moved by one)."""
        right = self.password_of(role) or b""
        return bytes(0x21 + (b - 0x21 + 1) % 94 if 0x21 <= b <= 0x7E else (b + 1) % 256 for b in right) or b"x"

    def _link(self, role: str) -> DlmsLink:
        link = self._links.get(role)
        if link is None or not link.is_open:
            self._links.pop(role, None)
            self._scalers.clear()  # a new association may be a new device (after a power cut, a swap)
            self._buffers = BufferReader(self)  # and its profiles' capture objects with it
            link = self.open_link(role)
            self._links[role] = link
        return link

    def _retrying(self, role: str, op: str, call: Callable[[DlmsLink], Any]) -> Any:
        failure: DeviceError | None = None
        for _ in range(self.retries + 1):
            try:
                return call(self._link(role))
            except AssociationRefused:
                raise
            except (DeviceTimeout, DeviceUnreachable) as exc:
                failure = exc
                self._links.pop(role, None)
                time.sleep(min(0.2, self.timeout))
        assert failure is not None
        raise failure

    # ---- GET and SET -------------------------------------------------------------------------------
    @staticmethod
    def attribute(class_id: int, obis: str | bytes, attribute: int) -> Any:
        from dlms_cosem import cosem, enumerations

        ln = obis_bytes(obis) if isinstance(obis, str) else obis
        return cosem.CosemAttribute(interface=enumerations.CosemInterface(class_id),
                                    instance=cosem.Obis(*ln), attribute=attribute)

    @staticmethod
    def get_on(link: DlmsLink, attributes: Sequence[Any], *, selection: Any = None,
               max_blocks: int = MAX_BLOCKS) -> list[Any]:
        """One GET (normal, or with list) on ``link``: per attribute its Python value, or an AccessResult.
        ``selection`` is the selective access of a GET-normal (a Profile generic's buffer by range)."""
        from dlms_cosem import cosem, utils
        from dlms_cosem.protocol import xdlms

        if len(attributes) == 1:
            answer = link.request(xdlms.GetRequestNormal(cosem_attribute=attributes[0], access_selection=selection),
                                  "get")
        else:
            answer = link.request(xdlms.GetRequestWithList(cosem_attributes_with_selection=[
                cosem.CosemAttributeWithSelection(attribute=a, access_selection=None) for a in attributes]), "get")
        raw = bytearray()
        for _ in range(max_blocks):
            if isinstance(answer, xdlms.GetResponseNormal):
                return [utils.parse_as_dlms_data(answer.data)]
            if isinstance(answer, xdlms.GetResponseNormalWithError | xdlms.GetResponseLastBlockWithError):
                return [AccessResult(int(answer.error.value))] * len(attributes)
            if isinstance(answer, xdlms.GetResponseWithList):
                return [data_result(r) for r in answer.response_data]
            if isinstance(answer, xdlms.GetResponseWithBlock | xdlms.GetResponseLastBlock):
                raw += answer.data
                if isinstance(answer, xdlms.GetResponseLastBlock):
                    return reassembled(link, bytes(raw), len(attributes))
                answer = link.request(xdlms.GetRequestNext(block_number=answer.block_number), "get-next")
                continue
            raise DeviceError(Msg("{dut}: a GET was answered with {name}", dut=link.dut, name=type(answer).__name__))
        raise DeviceError(Msg("{dut}: a long GET did not end within {max_blocks} blocks", dut=link.dut,
                              max_blocks=max_blocks))

    @staticmethod
    def set_on(link: DlmsLink, attribute: Any, data: bytes) -> int:
        """One SET-normal on ``link``: the Data-Access-Result (0 success)."""
        from dlms_cosem.protocol import xdlms

        answer = link.request(xdlms.SetRequestNormal(cosem_attribute=attribute, data=data), "set")
        result = getattr(answer, "result", None)
        if result is None:
            raise DeviceError(Msg("{dut}: a SET was answered with {name}", dut=link.dut, name=type(answer).__name__))
        return int(result.value)

    def _object(self, quantity: str) -> CosemObject:
        obj = self.map.object_of(quantity)
        if obj is None:
            raise NotDeclared(Msg("{device}: profile {model} declares no COSEM object for {quantity}", device=self.name,
                                  model=self.profile.model, quantity=quantity))
        return obj

    # ---- Device API --------------------------------------------------------------------------------
    def read_many(self, quantities: Sequence[str]) -> dict[str, Reading]:
        key = tuple(quantities)
        plan = self._plans.get(key)
        if plan is None:  # worked out once per list of quantities, not on every read (the soak polls in a loop)
            objects = [(q, self._object(q)) for q in quantities]
            plan = [(batch, [self.attribute(o.class_id, o.obis, o.attribute) for _, o in batch])
                    for batch in self.batches(objects)]
            self._plans[key] = plan

        def call(link: DlmsLink) -> dict[str, Reading]:
            unknown = [(q, o) for batch, _ in plan for q, o in batch
                       if o.class_id == CLASS_REGISTER and q not in self._scalers]
            for batch in self.batches(unknown):
                got = self.get_on(link, [self.attribute(o.class_id, o.obis, 3) for _, o in batch])
                for (q, o), su in zip(batch, got, strict=True):
                    self._scalers[q] = self._checked_scaler(q, o, su)
            out: dict[str, Reading] = {}
            for batch, attributes in plan:
                values = self.get_on(link, attributes)
                t0, t1 = link.last_times
                out.update({q: self._reading(q, o, v, t0, t1) for (q, o), v in zip(batch, values, strict=True)})
            return out

        return self._retrying(self.map.reads_with, "read", call)

    def batches(self, objects: list[tuple[str, CosemObject]]) -> list[list[tuple[str, CosemObject]]]:
        """GET-with-list requests that fit the meter's max PDU (ciphered, when the reading association ciphers),
        an energy channel's total and tariffs in one request (they are compared with each other, so they must come
        from one instant)."""
        room = self.map.max_pdu_size
        if self.map.associations[self.map.reads_with].security != SecurityPolicy.NONE:
            room = min(room - CIPHERING_OVERHEAD, LIBRARY_CIPHERED_PLAIN_MAX)
        per_request = max(1, (room - LIST_HEADER) // DESCRIPTOR_BYTES)
        groups: dict[str, list[tuple[str, CosemObject]]] = {}
        for q, o in objects:
            reg = EnergyRegister.parse(q)
            groups.setdefault(reg.channel.value if reg else q, []).append((q, o))
        batches: list[list[tuple[str, CosemObject]]] = []
        for group in groups.values():
            if batches and len(batches[-1]) + len(group) <= per_request:
                batches[-1].extend(group)
            else:
                batches.extend(group[i:i + per_request] for i in range(0, len(group), per_request))
        return batches

    def _checked_scaler(self, quantity: str, obj: CosemObject, got: Any) -> tuple[int, int]:
        if isinstance(got, AccessResult):
            raise DeviceRefused(Msg("{device}: {quantity} ({obis}) scaler_unit: {got}", device=self.name,
                                    quantity=quantity, obis=obj.obis, got=got), got.code)
        try:
            scaler, unit = int(got[0]), int(got[1])
        except (TypeError, ValueError, IndexError):
            raise DeviceError(Msg("{device}: {quantity} ({obis}) scaler_unit is not a structure of two: {got!r}",
                                  device=self.name, quantity=quantity, obis=obj.obis, got=got)) \
                from None
        if (scaler, unit) != (obj.scaler, DLMS_UNITS[obj.unit or "1"]):
            raise DeviceError(Msg("{device}: {quantity} ({obis}) reports scaler_unit 10^{scaler} unit {unit}; the "
                                  "profile declares 10^{scaler2} {unit2} (unit {DLMS_UNITS})", device=self.name,
                                  quantity=quantity, obis=obj.obis, scaler=scaler, unit=unit, scaler2=obj.scaler,
                                  unit2=obj.unit, DLMS_UNITS=DLMS_UNITS[obj.unit or '1']))
        return scaler, unit

    def _reading(self, quantity: str, obj: CosemObject, value: Any, t0: float, t1: float) -> Reading:
        if isinstance(value, AccessResult):
            raise DeviceRefused(Msg("{device}: GET of {quantity} ({obis}) answered {value}", device=self.name,
                                    quantity=quantity, obis=obj.obis, value=value), value.code)
        if obj.class_id == CLASS_REGISTER:
            if not isinstance(value, int) or isinstance(value, bool):
                raise DeviceError(Msg("{device}: {quantity} ({obis}) holds {value!r}, not a number", device=self.name,
                                      quantity=quantity, obis=obj.obis, value=value))
            scaler, _ = self._scalers[quantity]
            unit, factor = to_canonical(obj.unit or "1")
            step = 10.0 ** scaler * factor
            return Reading(quantity, value * step if scaler or factor != 1 else value, unit, step, t0, t1)
        if obj.is_string:
            text = value.decode("ascii", "replace") if isinstance(value, bytes | bytearray) else str(value)
            return Reading(quantity, text, None, None, t0, t1)
        return Reading(quantity, value, None, 1.0, t0, t1)

    def read_clock(self) -> ClockReading:
        clock = self.map.clock
        if clock is None or self.profile.clock is None:
            raise NotDeclared(Msg("{device}: profile {model} declares no dlms.clock", device=self.name,
                                  model=self.profile.model))

        def call(link: DlmsLink) -> ClockReading:
            value = self.get_on(link, [self.attribute(CLASS_CLOCK, clock.obis, 2)])[0]
            t0, t1 = link.last_times
            if isinstance(value, AccessResult):
                raise DeviceRefused(Msg("{device}: GET of the clock answered {value}", device=self.name, value=value),
                                    value.code)
            when, hundredths = self.decode_time(bytes(value))
            return ClockReading(when, t0, t1, 0.01 if hundredths else 1.0)

        return self._retrying(self.map.reads_with, "read clock", call)

    @property
    def _local_to_utc(self) -> bool:
        """The profile's sign convention of the clock's deviation (the Blue Book's is UTC-to-local)."""
        return bool(self.map.clock and self.map.clock.deviation == "local_to_utc")

    def decode_time(self, raw: bytes) -> tuple[datetime, bool]:
        """A COSEM date-time as an aware instant in the device's zone; whether it shows hundredths."""
        if len(raw) != 12:
            raise DeviceError(Msg("{device}: the clock holds {value}, not a 12-byte date-time", device=self.name,
                                  value=raw.hex()))
        try:
            return decode_datetime(raw, self.profile.clock.tzinfo, self._local_to_utc)  # type: ignore[union-attr]
        except ValueError as exc:
            raise DeviceError(Msg("{device}: the clock holds {value}, no valid date-time ({exc})", device=self.name,
                                  value=raw.hex(), exc=exc)) from None

    def encode_time(self, when: datetime) -> bytes:
        """An instant as the device's local date-time with its deviation (the profile's sign convention)."""
        return encode_datetime(when, self.profile.clock.tzinfo, self._local_to_utc)  # type: ignore[union-attr]

    def clock_set_data(self, when: datetime) -> bytes:
        from dlms_cosem import dlms_data

        return dlms_data.OctetStringData(self.encode_time(when)).to_bytes()

    def set_clock(self, when: datetime) -> None:
        clock = self.map.clock
        if clock is None or self.map.writes_with is None:
            raise NotDeclared(Msg("{device}: profile {model} declares no settable dlms.clock", device=self.name,
                                  model=self.profile.model))
        data = self.clock_set_data(when)
        code = self._retrying(self.map.writes_with, "set clock",
                              lambda link: self.set_on(link, self.attribute(CLASS_CLOCK, clock.obis, 2), data))
        if code:
            raise DeviceRefused(Msg("{device}: SET of the clock answered {value}", device=self.name,
                                    value=dar_name(code)), code)

    def write(self, quantity: str, value: float | int) -> None:
        obj = self._object(quantity)
        if self.map.writes_with is None:
            raise NotDeclared(Msg("{device}: profile {model} names no writing association", device=self.name,
                                  model=self.profile.model))
        data = encode_value(obj.type, value)
        code = self._retrying(self.map.writes_with, "write", lambda link: self.set_on(
            link, self.attribute(obj.class_id, obj.obis, obj.attribute), data))
        if code:
            raise DeviceRefused(Msg("{device}: SET of {quantity} ({obis}) answered {value}", device=self.name,
                                    quantity=quantity, obis=obj.obis, value=dar_name(code)), code)

    def read_journal(self) -> list[JournalEntry]:
        """Every entry of the profile's event logs (class 7), oldest first by entry number."""
        return self._retrying(self.map.reads_with, "read journal", self._buffers.journal)

    def read_load_profile(self) -> list[IntervalData]:
        """Every entry of the load profile (class 7) as interval data, oldest first."""
        return self._retrying(self.map.reads_with, "read load profile", self._buffers.load_profile)

    def probe(self) -> None:
        quantity = next((q for q in self.map.points), None)
        if self.map.clock is not None:
            self.read_clock()
        elif quantity is not None:
            self.read(quantity)
        else:
            self._link(self.map.reads_with)

    def settings(self) -> list[str]:
        return list(self.map.settings)

    def close(self) -> None:
        for link in self._links.values():
            link.close()
        self._links.clear()
        if self.line is not None:
            self.line.close()


__all__ = ["AccessResult", "DlmsDevice", "dar_name", "encode_value"]
