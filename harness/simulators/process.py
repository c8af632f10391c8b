"""The process around a simulated Modbus device: command line, Modbus servers, control channel,
and an orderly stop on SIGTERM/SIGINT. Every simulator (`harness sim meter`, `heat-meter`, …) runs
through ``run_simulator``; a power cut is a SIGKILL of this process, so nothing here may matter to
what survives one.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.simulators.defects import Defect, parse_defects, print_catalogue

if TYPE_CHECKING:
    from harness.config.profile import Profile
    from harness.simulators.modbus_device import SimulatedModbusDevice


def common_parser(prog: str, description: str, default_profile: str, default_serial: int) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=description)
    p.add_argument("--profile", type=Path, help=f"the simulator's profile (default: built-in {default_profile})")
    p.add_argument("--state-dir", type=Path, help="non-volatile state lives here")
    p.add_argument("--tcp", metavar="HOST:PORT", help="serve Modbus TCP (loopback only)")
    p.add_argument("--rtu", metavar="TTY", help="serve Modbus RTU on this serial device / pty")
    p.add_argument("--baudrate", type=int, default=9600)
    p.add_argument("--parity", choices="NEO", default="N")
    p.add_argument("--unit-id", type=int, default=1)
    p.add_argument("--control", metavar="[HOST:]PORT", help="control channel (default host 127.0.0.1)")
    p.add_argument("--serial", type=int, default=default_serial)
    p.add_argument("--defects", default="", help="comma-separated seeded defects")
    p.add_argument("--unlock-password", metavar="PASSWORD",
                   help="opens a write session when written to the profile's unlock register (modbus.write_protection);"
                        " default: none, nothing unlocks")
    p.add_argument("--credentials-file", type=Path, metavar="FILE",
                   help="JSON role -> {user, password} (the harness's {credentials_file}); the `unlock` password "
                        "opens write sessions, as --unlock-password does, without showing it in ps")
    p.add_argument("--list-defects", action="store_true", help="list the seeded defects and exit")
    return p


def _unlock_from_file(path: Path | None) -> str | None:
    from harness.simulators.credentials_file import read_credentials, unlock_password

    return None if path is None else unlock_password(read_credentials(path))


def run_simulator(args: argparse.Namespace, prog: str, catalogue: dict[str, Defect], default_profile: str,
                  make: Callable[[Profile, set[str]], SimulatedModbusDevice]) -> int:
    """Parse-checked arguments in, a serving device out, until SIGTERM/SIGINT."""
    if args.list_defects:
        return print_catalogue(catalogue)
    if not (args.tcp or args.rtu) or args.state_dir is None:
        print(f"{prog}: needs --state-dir and at least one of --tcp / --rtu", file=sys.stderr)
        return 2
    from harness.config import ConfigError, load_profile
    from harness.resources import builtin_profile

    try:
        defects = parse_defects(args.defects, catalogue)
        profile = load_profile(args.profile or builtin_profile(default_profile))
        device = make(profile, defects)
        device.set_unlock_password(args.unlock_password or _unlock_from_file(args.credentials_file))
    except (ValueError, ConfigError) as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(_serve(device, args, prog))
    return 0


def _allowed_host(host: str, prog: str) -> None:
    """Loopback, or an address of a network namespace the harness made (``link: netns``) — nothing else."""
    import ipaddress

    from harness.fault_injection.netns import POOL

    if host in ("127.0.0.1", "localhost", "::1"):
        return
    try:
        if ipaddress.ip_address(host) in POOL:
            return
    except ValueError:
        pass
    raise SystemExit(f"{prog}: the simulator serves loopback (or a harness namespace in {POOL}) only, not {host}")


def _control_address(spec: str, prog: str) -> tuple[str, int]:
    host, _, port = spec.rpartition(":")
    host = host or "127.0.0.1"
    _allowed_host(host, prog)
    return host, int(port)


async def _serve(device: SimulatedModbusDevice, args: argparse.Namespace, prog: str) -> None:
    from harness.simulators.control import serve_control
    from harness.simulators.wire_faults import serial_server, tcp_server  # the profile's wire rules + defects

    servers: list[Any] = []
    if args.tcp:
        host, port = args.tcp.rsplit(":", 1)
        _allowed_host(host, prog)
        servers.append(tcp_server(device, args.unit_id, (host, int(port))))
    if args.rtu:
        servers.append(serial_server(device, args.unit_id, args.rtu, args.baudrate, args.parity))
    control = await serve_control(*_control_address(args.control, prog), device.control) if args.control else None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    for server in servers:
        await server.serve_forever(background=True)
    ticker = asyncio.create_task(device.tick())
    print(f"{prog} ready (serial {device.serial}, defects: {', '.join(sorted(device.defects)) or 'none'})",
          flush=True)
    await stop.wait()
    ticker.cancel()
    device.refresh()  # an orderly shutdown saves everything, like a meter's power-fail interrupt
    device.persist(force=True)
    device.save_intervals()
    for server in servers:
        await server.shutdown()
    if control:
        control.close()
