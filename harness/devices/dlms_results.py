"""What a DLMS GET answers, as the driver hands it on: data as Python, or an ``AccessResult`` (a
Data-Access-Result, never confused with an integer value), and the data of a long GET put back together from
its blocks. Apart from the driver so the buffer reader (``dlms_buffers``) and the checks can name results
without importing the driver."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harness.devices.api import DeviceError
from harness.reporting.texts import Msg

if TYPE_CHECKING:
    from harness.devices.dlms_link import DlmsLink

DAR_NAMES = {1: "hardware-fault", 2: "temporary-failure", 3: "read-write-denied", 4: "object-undefined",
             9: "object-class-inconsistent", 11: "object-unavailable", 12: "type-unmatched",
             13: "scope-of-access-violated", 14: "data-block-unavailable", 15: "long-get-aborted",
             16: "no-long-get-in-progress", 17: "long-set-aborted", 18: "no-long-set-in-progress",
             250: "other-reason"}


def dar_name(code: int) -> str:
    return DAR_NAMES.get(code, f"data-access-result {code}")


@dataclass(frozen=True)
class AccessResult:
    """A GET that gave a Data-Access-Result instead of data (never confused with an integer value)."""

    code: int

    def __str__(self) -> str:
        return dar_name(self.code)


def reassembled(link: DlmsLink, raw: bytes, count: int) -> list[Any]:
    """The data of a long GET, put together from its blocks: one Data, or a list of Get-Data-Results."""
    from dlms_cosem import utils
    from dlms_cosem.protocol import xdlms

    try:
        if count == 1:
            return [utils.parse_as_dlms_data(raw)]
        listed = xdlms.GetResponseWithList.from_bytes(b"\xc4\x03\xc1" + raw)
        results = [data_result(r) for r in listed.response_data]
    except Exception as exc:  # the library's parsers raise what they meet: the meter's data is at fault
        raise DeviceError(Msg("{dut}: the blocks of a long GET ({n_raw} bytes) do not reassemble into {count} results "
                              "({name}: {exc})", dut=link.dut, n_raw=len(raw), count=count, name=type(exc).__name__,
                              exc=exc)) from None
    if len(results) != count:
        raise DeviceError(Msg("{dut}: the blocks of a long GET hold {n_results} results, {count} asked for",
                              dut=link.dut, n_results=len(results), count=count))
    return results


def data_result(item: Any) -> Any:
    """One Get-Data-Result of a list as dlms-cosem parsed it: data as Python, or an AccessResult."""
    return item.to_python() if hasattr(item, "to_python") else AccessResult(int(item.value))
