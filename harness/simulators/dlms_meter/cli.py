"""`harness sim dlms-meter`: the process around the simulated DLMS meter — command line, the TCP-wrapper
server, the control channel (simulated time, load) and an orderly stop on SIGTERM/SIGINT. A power cut is
a SIGKILL of this process; what survives it is in the NVM file only."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path
from typing import Any

from harness.simulators.defects import parse_defects, print_catalogue
from harness.simulators.dlms_meter.defects import DLMS_METER_DEFECTS

PROG = "harness sim dlms-meter"
DEFAULT_PROFILE = "tek-sim-dlms.yaml"


def build_parser() -> argparse.ArgumentParser:
    from harness.simulators.meter import parse_load

    p = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    p.add_argument("--profile", type=Path, help=f"the simulator's profile (default: built-in {DEFAULT_PROFILE})")
    p.add_argument("--state-dir", type=Path, help="non-volatile state lives here")
    p.add_argument("--tcp", metavar="HOST:PORT", help="serve DLMS over the TCP wrapper (loopback only)")
    p.add_argument("--hdlc", metavar="TTY", help="serve DLMS over HDLC (IEC 62056-46) on this serial device / pty")
    p.add_argument("--control", metavar="[HOST:]PORT", help="control channel (default host 127.0.0.1)")
    p.add_argument("--serial", type=int, default=95000101)
    p.add_argument("--defects", default="", help="comma-separated seeded defects")
    p.add_argument("--credentials-file", type=Path, metavar="FILE",
                   help="JSON role -> {password} or {encryption_key, authentication_key}: the LLS passwords and HLS / "
                   "ciphering keys of the profile's associations (never in argv)")
    p.add_argument("--load", type=parse_load, default=parse_load("3000,500,1200,300"),
                   help="A+ W, A- W, R+ var, R- var (default 3000,500,1200,300)")
    p.add_argument("--list-defects", action="store_true", help="list the seeded defects and exit")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.list_defects:
        return print_catalogue(DLMS_METER_DEFECTS)
    if not (args.tcp or args.hdlc) or args.state_dir is None:
        print(f"{PROG}: needs --state-dir and at least one of --tcp / --hdlc", file=sys.stderr)
        return 2
    from harness.config import ConfigError, load_profile
    from harness.resources import builtin_profile
    from harness.simulators.credentials_file import read_credentials
    from harness.simulators.dlms_meter.model import DlmsMeterModel
    from harness.simulators.dlms_meter.security import Keys
    from harness.simulators.dlms_meter.server import DlmsServer

    try:
        defects = parse_defects(args.defects, DLMS_METER_DEFECTS)
        profile = load_profile(args.profile or builtin_profile(DEFAULT_PROFILE))
        model = DlmsMeterModel(profile, args.state_dir, args.load, defects, args.serial)
        creds = read_credentials(args.credentials_file) if args.credentials_file else {}
        passwords = {role: c["password"] for role, c in creds.items() if c.get("password")}
        keys = {role: Keys(bytes.fromhex(c["encryption_key"]), bytes.fromhex(c["authentication_key"]))
                for role, c in creds.items() if c.get("encryption_key") and c.get("authentication_key")}
    except (ValueError, ConfigError) as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    asyncio.run(_serve(model, DlmsServer(model, passwords, keys), args))
    return 0


async def _serve(model: Any, server: Any, args: argparse.Namespace) -> None:
    from harness.simulators.control import advance_seconds, serve_control
    from harness.simulators.dlms_meter.hdlc import HdlcStation, serve_hdlc
    from harness.simulators.process import _allowed_host, _control_address


    async def control(req: dict[str, Any]) -> dict[str, Any]:
        op = str(req.get("op"))
        model.refresh()
        if op == "advance":
            model.timeline.advance(advance_seconds(req))
            model.refresh()
        elif op == "set_speed":
            speed = float(req["speed"])
            if not 0 < speed <= 1e6:
                raise ValueError("speed must be in (0, 1e6]")
            model.timeline.set_speed(speed)
        elif op == "set_load":
            model.meter.load.update({k: float(v) for k, v in req["load"].items() if k in model.meter.load})
        elif op == "tamper":
            if model.journal is None:
                raise ValueError("this meter's profile declares no event logs to log tamper events in")
            model.journal.set_tamper(str(req["input"]), bool(req["active"]), model.timeline.rtc())
        elif op != "status":
            raise ValueError(f"unknown op {op!r}; ops: status, advance, set_speed, set_load, tamper")
        model.save_intervals()  # a day of advance is one load-profile save, before anything can read it
        return model.status()

    tcp = None
    if args.tcp:
        host, port = args.tcp.rsplit(":", 1)
        _allowed_host(host, PROG)
        tcp = await server.serve(host, int(port))
    line = await serve_hdlc(HdlcStation(server, model.map.hdlc.physical_address, model.defects), args.hdlc) \
        if args.hdlc else None
    ctl = await serve_control(*_control_address(args.control, PROG), control) if args.control else None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    async def tick() -> None:
        while True:
            await asyncio.sleep(0.25)
            model.keep_alive()

    ticker = asyncio.create_task(tick())
    print(f"{PROG} ready (serial {model.serial}, defects: {', '.join(sorted(model.defects)) or 'none'})", flush=True)
    await stop.wait()
    ticker.cancel()
    model.refresh()
    model.persist(force=True)
    if tcp:
        tcp.close()
    if line:
        line.cancel()
    if ctl:
        ctl.close()
