"""GETs per second through the Device API against raw dlms-cosem client calls, on the same simulated DLMS meter.

Why (issue 16): the dlms driver wraps every GET in its own socket handling, bounded timeouts and retries, the
transcript's bookkeeping and the profile's scaling; a lab must not lose throughput to that. Target: the
Device API reaches >= 0.8 of the raw client's GET rate.

How: one ``harness sim dlms-meter`` on a free loopback port (throw-away state, the rig's LLS passwords in a
0600 file, stopped by its PID at the end). Two clients, each holding one reading association (LLS, client
SAP 32), in alternating rounds so that drift of the machine hits both alike:

* ``raw``  dlms-cosem's blocking ``DlmsClient`` (``TcpTransport`` + ``BlockingTcpIO``), ``client.get`` of
           active_import_total's value (1.0.1.8.0.255, class 3, attribute 2), undecoded;
* ``api``  ``DlmsDevice.read("active_import_total")``: the same GET, decoded and scaled (the scaler_unit
           is read once per association and kept), no transcript.

Figures are medians over rounds: GETs/s and this process's CPU µs per GET (the client side alone).

Run: ``python benchmarks/dlms_get_rate.py [--rounds 5] [--seconds 2] [--json FILE]``.
The last line of stdout is the JSON summary.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from read_throughput import HOST, emit, interleaved, measure, rate_summary, rounds_args, stop_simulator, wait_listening

from harness.config import load_rig
from harness.devices.dlms import DlmsDevice
from harness.fault_injection.ports import free_port
from harness.resources import builtin_rig

RIG = builtin_rig("sim-dlms-meter.yaml")
QUANTITY = "active_import_total"


@contextlib.contextmanager
def dlms_meter(passwords: dict[str, str]) -> Iterator[int]:
    with tempfile.TemporaryDirectory(prefix="dlms-bench-") as tmp_name:
        tmp = Path(tmp_name)
        creds = tmp / "credentials.json"
        creds.touch(mode=0o600)
        creds.write_text(json.dumps({role: {"password": pw} for role, pw in passwords.items()}))
        port = free_port(HOST)
        with (tmp / "sim.log").open("wb") as log:
            proc = subprocess.Popen([sys.executable, "-m", "harness", "sim", "dlms-meter", "--state-dir",
                                     str(tmp / "state"), "--tcp", f"{HOST}:{port}", "--credentials-file", str(creds)],
                                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            wait_listening(proc, port)
            yield port
        finally:
            stop_simulator(proc)


def raw_getter(port: int, password: str, sap: int, server: int) -> tuple[Callable[[], None], Callable[[], None]]:
    from dlms_cosem import cosem, enumerations
    from dlms_cosem.client import DlmsClient
    from dlms_cosem.io import BlockingTcpIO, TcpTransport
    from dlms_cosem.security import LowLevelSecurityAuthentication

    transport = TcpTransport(client_logical_address=sap, server_logical_address=server,
                             io=BlockingTcpIO(host=HOST, port=port, timeout=2))
    client = DlmsClient(transport=transport, authentication=LowLevelSecurityAuthentication(secret=password.encode()))
    client.connect()
    client.associate()
    attribute = cosem.CosemAttribute(interface=enumerations.CosemInterface.REGISTER,
                                     instance=cosem.Obis(1, 0, 1, 8, 0, 255), attribute=2)

    def get() -> None:
        client.get(attribute)

    def close() -> None:
        with contextlib.suppress(Exception):
            client.release_association()
        client.disconnect()

    return get, close


def main(argv: list[str] | None = None) -> int:
    args = rounds_args(__doc__, argv)
    loaded = load_rig(RIG)
    dut, profile = loaded.rig.duts["meter"], loaded.profiles["meter"]
    assert profile.dlms is not None
    passwords = {role: c.password for role, c in dut.credentials.items() if c.password}
    reader = profile.dlms.associations[profile.dlms.reads_with]
    with dlms_meter(passwords) as port:
        device = DlmsDevice("meter", profile, dut, loaded.rig.timing.model_copy(update={"retries": 0}), None,
                            {"host": HOST, "port": port})
        raw_get, raw_close = raw_getter(port, passwords[reader.credential or ""], reader.client_sap,
                                        profile.dlms.server_logical_address)
        try:
            device.read(QUANTITY)  # associate and learn the scaler before timing
            rates, cpu_us = interleaved({"raw": lambda s: measure(raw_get, s),
                                         "api": lambda s: measure(lambda: device.read(QUANTITY), s)},
                                        args.rounds, args.seconds)
        finally:
            raw_close()
            device.close()
    summary = rate_summary("dlms_get_rate", args, rates, cpu_us, ("api", "raw"))
    print(f"api/raw rate {summary['api_over_raw_rate']}  (target >= 0.8)")
    return emit(summary, args.json)


if __name__ == "__main__":
    raise SystemExit(main())
