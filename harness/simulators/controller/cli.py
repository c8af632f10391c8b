"""`harness sim controller`: the command line and the process around the simulated controller.

Like every simulator it serves one device on loopback until SIGTERM/SIGINT; a power cut is a
SIGKILL, after which the next start on the same ``--state-dir`` is a power-up (NVM, accounts,
audit log, firmware slots and certificate as they were). ``--help`` and ``--list-defects`` do not
import asyncua, so they answer at once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from harness.simulators.defects import CONTROLLER_DEFECTS, parse_defects, print_catalogue

if TYPE_CHECKING:
    from harness.simulators.controller.device import Controller

PROG = "harness sim controller"
DEFAULT_PROFILE = "tek-sim-pc1.yaml"
TICK_S = 0.1


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="The golden simulated process controller: OPC UA server "
                                "with users and roles, audit log (cl. 69) and signed A/B software update (cl. 70).")
    p.add_argument("--profile", type=Path, help=f"the controller's profile (default: built-in {DEFAULT_PROFILE})")
    p.add_argument("--state-dir", type=Path,
                   help="non-volatile state (NVM, accounts, audit log, slots, PKI) lives here")
    p.add_argument("--tcp", metavar="HOST:PORT", help="serve OPC UA on this loopback address")
    p.add_argument("--control", metavar="PORT", type=int, help="control channel port on 127.0.0.1")
    p.add_argument("--users", default="", metavar="NAME:PASSWORD:ROLE,...",
                   help="accounts created on first start (stored hashed; existing accounts are kept as they are)")
    p.add_argument("--credentials-file", type=Path, metavar="FILE",
                   help="JSON role -> {user, password} (the harness's {credentials_file}): accounts as --users makes "
                        "them, without the passwords in ps")
    p.add_argument("--trust", action="append", default=[], metavar="CERT[=ROLE]",
                   help="trust this client certificate (DER or PEM; repeatable or comma-separated); a certificate "
                        "identity gets ROLE (default: the profile's first role). Untrusted certificates are refused")
    p.add_argument("--serial", default="PC1-25-000417", help="serial number on first start")
    p.add_argument("--firmware", default="2.1.0", help="factory firmware version (first start)")
    p.add_argument("--defects", default="", help="comma-separated seeded defects")
    p.add_argument("--list-defects", action="store_true", help="list the seeded defects and exit")
    return p


def _trusted(specs: list[str], roles: set[str]) -> list[tuple[bytes, str]]:
    from harness.simulators.controller.auth import load_certificate_der

    out = []
    for item in (s.strip() for spec in specs for s in spec.split(",") if s.strip()):
        path, _, role = item.partition("=")
        if role and role not in roles:
            raise ValueError(f"--trust {item}: role {role!r} is not one of {', '.join(sorted(roles))}")
        try:
            out.append((load_certificate_der(Path(path)), role))
        except (OSError, ValueError) as exc:
            raise ValueError(f"--trust {path}: cannot read a certificate ({exc})") from None
    return out


def _users(args: argparse.Namespace) -> str:
    if args.credentials_file is None:
        return str(args.users)
    from harness.simulators.credentials_file import read_credentials, users_spec

    return ",".join(s for s in (args.users, users_spec(read_credentials(args.credentials_file))) if s)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.list_defects:
        return print_catalogue(CONTROLLER_DEFECTS)
    if not args.tcp or args.state_dir is None:
        print(f"{PROG}: needs --state-dir and --tcp HOST:PORT", file=sys.stderr)
        return 2
    host, _, port = args.tcp.rpartition(":")
    host = host.strip("[]")
    if host not in ("127.0.0.1", "localhost", "::1") or not port.isdigit():
        print(f"{PROG}: --tcp must be a loopback HOST:PORT (the simulator serves loopback only)", file=sys.stderr)
        return 2
    gc.disable()  # until the server has started: _settle_heap
    from harness.resources import builtin_profile
    from harness.simulators.controller.device import Controller
    from harness.simulators.controller.profile import ProfileError, load_controller_profile
    from harness.simulators.controller.users import parse_users

    try:
        defects = parse_defects(args.defects, CONTROLLER_DEFECTS)
        profile = load_controller_profile(args.profile or builtin_profile(DEFAULT_PROFILE))
        roles = set(profile.roles)
        device = Controller(profile, args.state_dir, defects, args.serial, args.firmware,
                            parse_users(_users(args), roles), _trusted(args.trust, roles))
    except (ValueError, ProfileError) as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    for noisy in ("asyncua.server.uaprocessor", "asyncua.server.address_space", "asyncua.server.server",
                  "asyncua.crypto.uacrypto"):
        logging.getLogger(noisy).setLevel(logging.CRITICAL)  # refusals are the point; the audit log has them
    asyncio.run(_serve(device, host, int(port), args.control))
    return 0


async def _serve(device: Controller, host: str, port: int, control_port: int | None) -> None:
    from harness.simulators.control import serve_control
    from harness.simulators.controller.server import build_server

    try:
        server, emitter = await build_server(device, host, port)
        await server.start()
    finally:
        _settle_heap()
    control = await serve_control("127.0.0.1", control_port, device.control) if control_port else None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    ticker = asyncio.create_task(_tick(device))
    if not device.auth.trust.roles:
        print(f"{PROG}: no --trust certificate: every secure channel will be refused", file=sys.stderr, flush=True)
    print(f"{PROG} ready on opc.tcp://{host}:{port}{device.profile.endpoint_path} (serial {device.serial}, firmware "
          f"{device.running_version}, defects: {', '.join(sorted(device.defects)) or 'none'})", flush=True)
    await stop.wait()
    ticker.cancel()
    if emitter is not None:
        await emitter.stop()
    if control:
        control.close()
    with contextlib.suppress(Exception):
        await server.stop()
    device.close()


def _settle_heap() -> None:
    """The start (imports, device, server) makes about a million objects, most of them asyncua's standard address
    space (~6000 nodes), none of them garbage: with the collector on, its passes over the growing heap were a fifth
    of a start's CPU (2.3 s -> 1.9 s per start; the fill alone 1.5 s -> 1.0 s), and every full collection afterwards
    walked the whole address space again. They are kept out of its sight (gc.freeze: they live as long as the
    process anyway); what the device makes while it serves is collected as before."""
    gc.freeze()
    gc.enable()


async def _tick(device: Controller) -> None:
    """The device runs between requests too: process, alarms, update deadlines."""
    while True:
        await asyncio.sleep(TICK_S)
        try:
            device.tick()
        except Exception:
            logging.getLogger(PROG).exception("tick failed")
