"""GETs per second through the Device API over HDLC on a pty against the TCP wrapper, on the same simulated meter.

Why (issue 16, HDLC slice): the HDLC carrier adds framing, an LLC header, the line's polling reads and a shared
line lock to every GET; a lab must know what a serial meter costs against one on the TCP wrapper, with the line's
own speed out of the picture (a pty has no baud rate: a real 9600 Bd line carries ~35 such GETs a second).

How: one ``harness sim dlms-meter`` serving both the TCP wrapper (a free loopback port) and HDLC (one end of a
socat pty pair), throw-away state, the rig's LLS passwords in a 0600 file, stopped by its PID at the end. Two
``DlmsDevice``s of the same profile, each holding one reading association (LLS, client SAP 32), in alternating
rounds: ``tcp`` on the wrapper, ``hdlc`` on the pty; each ``read("active_import_total")``, no transcript.
Figures are medians over rounds: GETs/s and this process's CPU µs per GET (the client side alone).

Run: ``python benchmarks/dlms_hdlc_rate.py [--rounds 5] [--seconds 2] [--json FILE]``.
The last line of stdout is the JSON summary.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from read_throughput import HOST, emit, interleaved, measure, rate_summary, rounds_args, stop_simulator, wait_listening

from harness.config import load_rig
from harness.config.rig import SerialTransport, Transport
from harness.devices.dlms import DlmsDevice
from harness.fault_injection.ports import free_port
from harness.fault_injection.serial_line import PtyPair
from harness.resources import builtin_rig

RIG = builtin_rig("sim-dlms-meter.yaml")
QUANTITY = "active_import_total"


def main(argv: list[str] | None = None) -> int:
    args = rounds_args(__doc__, argv)
    loaded = load_rig(RIG)
    dut, profile = loaded.rig.duts["meter"], loaded.profiles["meter"]
    timing = loaded.rig.timing.model_copy(update={"retries": 0})
    passwords = {role: c.password for role, c in dut.credentials.items() if c.password}
    with tempfile.TemporaryDirectory(prefix="dlms-hdlc-bench-") as tmp_name:
        tmp = Path(tmp_name)
        creds = tmp / "credentials.json"
        creds.touch(mode=0o600)
        creds.write_text(json.dumps({role: {"password": pw} for role, pw in passwords.items()}))
        pair = PtyPair(tmp, "line")
        pair.open()
        port = free_port(HOST)
        with (tmp / "sim.log").open("wb") as log:
            proc = subprocess.Popen([sys.executable, "-m", "harness", "sim", "dlms-meter", "--state-dir",
                                     str(tmp / "state"), "--tcp", f"{HOST}:{port}", "--hdlc", str(pair.dut_end),
                                     "--credentials-file", str(creds)],
                                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            wait_listening(proc, port)
            serial_dut = dut.model_copy(update={"transport": Transport(serial=SerialTransport(port="pty"))})
            devices = {"tcp": DlmsDevice("meter", profile, dut, timing, None, {"host": HOST, "port": port}),
                       "hdlc": DlmsDevice("meter", profile, serial_dut, timing, None,
                                          {"serial_port": str(pair.harness_end)})}
            try:
                for device in devices.values():
                    device.read(QUANTITY)  # associate and learn the scaler before timing
                rates, cpu_us = interleaved({m: (lambda s, d=d: measure(lambda: d.read(QUANTITY), s))
                                             for m, d in devices.items()}, args.rounds, args.seconds)
            finally:
                for device in devices.values():
                    device.close()
        finally:
            stop_simulator(proc)
            pair.close()
    summary = rate_summary("dlms_hdlc_rate", args, rates, cpu_us, ("hdlc", "tcp"))
    print(f"hdlc/tcp rate {summary['hdlc_over_tcp_rate']}, CPU per GET {summary['hdlc_over_tcp_cpu']}")
    return emit(summary, args.json)


if __name__ == "__main__":
    sys.exit(main())
