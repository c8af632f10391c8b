"""Values between OPC UA and the harness: canonical units, the node's own type, and what the transcript keeps.

Pure functions the OPC UA driver (``opcua.py``) applies to every read, write and call; kept apart so the
driver reads as sessions and exchanges, and these as conversions.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from harness.config.opcua_map import OpcuaPoint
from harness.devices.api import Reading
from harness.devices.opcua_session import BadStatus, LiveSession


def check_status(status: Any, what: str) -> None:
    if status is not None and not status.is_good():
        raise BadStatus(status.value, what)


_NUMBERS = (float, int, bool)  # what a process value mostly is: plain already


def reading(quantity: str, point: OpcuaPoint, value: Any, t0: float, t1: float) -> Reading:
    if value.__class__ not in _NUMBERS:
        value = plain(value)
    if isinstance(value, int | float) and not isinstance(value, bool) and point.factor != 1.0:
        value = value * point.factor
    return Reading(quantity, value, point.canonical_unit, None, t0, t1, isinstance(value, float))


def to_device(point: OpcuaPoint, value: Any) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool) and point.factor != 1.0:
        return value / point.factor
    return value


def cast(value: Any, vtype: Any) -> Any:
    """A Python value as the node's OPC UA type expects it (ints rounded, floats as floats)."""
    from asyncua import ua

    ints = {ua.VariantType.SByte, ua.VariantType.Byte, ua.VariantType.Int16, ua.VariantType.UInt16,
            ua.VariantType.Int32, ua.VariantType.UInt32, ua.VariantType.Int64, ua.VariantType.UInt64}
    if vtype in ints and isinstance(value, int | float) and not isinstance(value, bool):
        return round(value)
    if vtype in (ua.VariantType.Float, ua.VariantType.Double) and isinstance(value, int | float):
        return float(value)
    if vtype == ua.VariantType.String and not isinstance(value, str):
        return str(value)
    if vtype == ua.VariantType.ByteString and isinstance(value, bytearray | memoryview):
        return bytes(value)
    return value


async def input_types(live: LiveSession, method_id: Any) -> list[Any] | None:
    """The VariantTypes of a method's declared input arguments (None: the method declares none)."""
    from asyncua import ua
    from asyncua.common.ua_utils import data_type_to_variant_type

    try:
        prop = await live.node(method_id).get_child("0:InputArguments")
        arguments = await prop.read_value()
    except ua.UaStatusCodeError:
        return None
    types: list[Any] = []
    for arg in arguments or []:
        try:
            types.append(await data_type_to_variant_type(live.node(arg.DataType)))
        except Exception:
            types.append(None)
    return types


def plain(value: Any) -> Any:
    from harness.devices.opcua_audit import plain

    value = plain(value)
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def summary(value: Any) -> Any:
    """What the transcript keeps of an argument: bytes by length and digest, not a 64 KiB chunk."""
    if isinstance(value, bytes | bytearray):
        return {"bytes": len(value), "sha256": hashlib.sha256(value).hexdigest()[:16]}
    return value


def jsonable(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, bytes | bytearray):
        return summary(value)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [jsonable(v) for v in value]
    return str(value)
