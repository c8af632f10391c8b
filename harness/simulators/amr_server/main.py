"""``harness sim amr-server``: the golden AMR server's command line."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

PROG = "harness sim amr-server"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="The golden AMR server: REST API (docs/amr-api.yaml) and the "
                                "admin, operator and subscriber workstation pages (/ui/) on uvicorn, SQLAlchemy "
                                "storage (SQLite or PostgreSQL), its own Modbus poller of the field meters.")
    p.add_argument("--state-dir", type=Path, help="folder of its database (amr.sqlite3)")
    p.add_argument("--http", help="HOST:PORT to serve the API on (loopback)")
    p.add_argument("--field", type=Path, help="provisioning file (JSON): the meters to read and their registers")
    p.add_argument("--db", "--database", dest="database", help="SQLAlchemy URL, e.g. postgresql+psycopg://user@host"
                   "/db, or over a Unix socket postgresql+psycopg://user@/db?host=/run/postgresql (default: SQLite in "
                   "the state directory); a password goes in $PGPASSWORD or a pgpass file, never on the command line")
    p.add_argument("--base-path", default="/api/v1")
    p.add_argument("--credentials-file", type=Path, help="JSON role -> {user, password}: accounts made at start")
    p.add_argument("--poll-interval", type=float, default=1.0, help="seconds between automatic readings")
    p.add_argument("--inactive-after", type=float, default=2.5, help="seconds without an answer before a meter "
                   "is shown inactive")
    p.add_argument("--timeout", type=float, default=0.5, help="seconds a meter has to answer a poll")
    p.add_argument("--control", metavar="[HOST:]PORT", help="control channel: advance the server's time (its polls "
                   "run at their simulated times)")
    p.add_argument("--max-connections", type=int, default=16, help="connections served at once (its profile's "
                   "amr.max_connections); past it a request is answered 503. 0: no limit")
    p.add_argument("--defects", default="", help="comma-separated seeded defects (see --list-defects)")
    p.add_argument("--list-defects", action="store_true")
    return p


def main(argv: list[str]) -> int:
    from harness.simulators.amr_server.defects import AMR_DEFECTS
    from harness.simulators.defects import parse_defects, print_catalogue

    args = _parser().parse_args(argv)
    if args.list_defects:
        return print_catalogue(AMR_DEFECTS)
    if args.state_dir is None or args.http is None or args.field is None:
        print(f"{PROG}: needs --state-dir, --http and --field", file=sys.stderr)
        return 2
    try:
        defects = parse_defects(args.defects, AMR_DEFECTS)
        host, _, port = args.http.rpartition(":")
        if host not in ("127.0.0.1", "::1", "localhost", "[::1]"):
            raise ValueError(f"--http {args.http}: the simulator serves loopback only")
        if args.database:
            _check_database_url(args.database)
        field = json.loads(args.field.read_text(encoding="utf-8"))
        accounts = json.loads(args.credentials_file.read_text(encoding="utf-8")) if args.credentials_file else {}
    except (ValueError, OSError) as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    args.state_dir.mkdir(parents=True, exist_ok=True)
    from sqlalchemy.exc import SQLAlchemyError

    try:
        asyncio.run(_serve(args, host.strip("[]"), int(port), field, accounts, defects))
    except SQLAlchemyError as exc:  # a database that cannot be opened: its reason, not a traceback
        print(f"{PROG}: database: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 2
    return 0


def _check_database_url(url: str) -> None:
    """A URL SQLAlchemy can open, without a password (argv is visible to every user of the host)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ValueError(f"--db {url!r}: not a database URL ({exc})") from None
    if parsed.password:
        raise ValueError("--db: the URL holds a password, which the process list would show; give it in "
                         "$PGPASSWORD or a pgpass file instead")


def _bootstrap(engine: Any, accounts: dict[str, Any]) -> None:
    """The accounts of the credentials file (role -> {user, password}), made or given that password."""
    from sqlalchemy.orm import Session

    from harness.simulators.amr_server.app import ROLES
    from harness.simulators.amr_server.store import User, hash_password

    with Session(engine) as session:
        for role, cred in accounts.items():
            if role not in ROLES or not isinstance(cred, dict) or "user" not in cred or "password" not in cred:
                continue
            user = session.get(User, cred["user"])
            if user is None:
                session.add(User(name=cred["user"], role=role, password_hash=hash_password(cred["password"]),
                                 meters=[]))
            else:
                user.role, user.deleted = role, False
                user.password_hash = hash_password(cred["password"])
        session.commit()


async def _serve(args: argparse.Namespace, host: str, port: int, field: dict[str, Any],
                 accounts: dict[str, Any], defects: set[str]) -> None:
    import uvicorn
    from sqlalchemy.orm import Session

    from harness.simulators.amr_server.app import AmrApp
    from harness.simulators.amr_server.poller import FieldMeter, Poller
    from harness.simulators.amr_server.sim_time import PollSchedule, SimClock
    from harness.simulators.amr_server.store import Meter, open_database
    from harness.simulators.control import serve_control
    from harness.simulators.process import _control_address

    engine = open_database(args.database or f"sqlite:///{args.state_dir / 'amr.sqlite3'}")
    meters = [FieldMeter.from_json(m) for m in field.get("meters", [])]
    with Session(engine) as session:
        for m in meters:
            session.merge(Meter(id=m.id, kind=m.kind))
        session.commit()
    _bootstrap(engine, accounts)
    poller = Poller(meters, engine, args.poll_interval, args.timeout, defects, SimClock(args.state_dir / "clock.json"))
    schedule = PollSchedule(poller, args.poll_interval, defects)
    app = AmrApp(engine, poller, args.inactive_after, defects).starlette(args.base_path)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        task = asyncio.create_task(schedule.run())
        control = await serve_control(*_control_address(args.control, PROG), schedule.control) if args.control \
            else None
        try:
            yield
        finally:
            if control is not None:
                control.close()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    app.router.lifespan_context = lifespan
    from harness.simulators.amr_server.http_defects import limit_concurrency, protocol

    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False,
                                           http=protocol(defects),
                                           limit_concurrency=limit_concurrency(args.max_connections or None)))
    await server.serve()
