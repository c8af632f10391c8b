"""`harness fleet …`: the options, and one clear line instead of a traceback for every user mistake."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

EXIT_USAGE = 2
DEFAULT_WORK = Path("~/.cache/tek-harness/fleet").expanduser()


def add_parser(sub: argparse._SubParsersAction) -> None:
    f = sub.add_parser("fleet", help="certification jobs across benches (Celery + Redis): worker, submit, status, "
                       "fetch, cancel")
    fs = f.add_subparsers(dest="fleet_command", metavar="ACTION", required=True)

    def broker(p: argparse.ArgumentParser) -> None:
        p.add_argument("--broker", metavar="URL", help="Redis URL of broker and results (default "
                       "$HARNESS_FLEET_BROKER or redis://127.0.0.1:6379/0)")

    w = fs.add_parser("worker", help="serve one bench: its jobs one at a time, and simulated ones with --simulated")
    w.add_argument("--bench", required=True, metavar="NAME", help="the bench (set of equipment) this host serves")
    broker(w)
    w.add_argument("--store", metavar="DIR", default=os.environ.get("HARNESS_FLEET_STORE"),
                   help="result store: a folder (a shared mount) or SCHEME://… of a plugin "
                        "(default $HARNESS_FLEET_STORE)")
    w.add_argument("--simulated", type=int, default=0, metavar="N",
                   help="also run up to N jobs at once from the shared queue of all-simulated rigs")
    w.add_argument("--work", type=Path, default=DEFAULT_WORK, metavar="DIR",
                   help=f"where running jobs keep their run folders (default {DEFAULT_WORK})")

    s = fs.add_parser("submit", help="queue a certification of a rig (validated first); prints the job id")
    s.add_argument("rig", nargs="?", type=Path, help="rig YAML (default: the built-in simulated meter rig)")
    s.add_argument("--bench", metavar="NAME", help="the bench to run on (needed for real equipment)")
    s.add_argument("--suite", action="append", default=[], metavar="NAME")
    s.add_argument("--check", action="append", default=[], metavar="ID")
    s.add_argument("--defect", action="append", default=[], metavar="NAME")
    s.add_argument("--reruns", type=int, metavar="N")
    broker(s)

    st = fs.add_parser("status", help="a table of jobs: rig, bench, state, progress, verdict")
    st.add_argument("job", nargs="?")
    st.add_argument("--watch", action="store_true", help="refresh until every job shown has finished")
    st.add_argument("--interval", type=float, default=2.0, metavar="S", help="with --watch: seconds between "
                    "refreshes (default 2)")
    broker(st)

    fe = fs.add_parser("fetch", help="download a job's sealed run, unpack it and verify its seal")
    fe.add_argument("job")
    fe.add_argument("--to", type=Path, required=True, metavar="DIR")
    fe.add_argument("--store", metavar="DIR", help="the result store (default: where the worker put it)")
    broker(fe)

    m = fs.add_parser("matrix", help="each rig golden plus each seeded defect of its simulators, one job each; "
                      "expected vs observed, exit 1 on any miss")
    m.add_argument("rigs", nargs="*", type=Path, help="rig YAMLs (default: the built-in simulated meter rig)")
    m.add_argument("--defects", metavar="all|NAME,…", help="the seeded defects to run: all, or names")
    m.add_argument("--local", type=int, metavar="N", help="no broker: run the jobs on N local processes")
    m.add_argument("--out", type=Path, metavar="DIR", help="with --local: keep the run folders here")
    m.add_argument("--bench", metavar="NAME", help="run every job on this bench (default: the shared queue)")
    m.add_argument("--timeout", type=float, default=4 * 3600.0, metavar="S",
                   help="stop waiting after S seconds (default 4 h)")
    broker(m)

    c = fs.add_parser("cancel", help="cancel a queued or running job")
    c.add_argument("job")
    broker(c)


def run(args: argparse.Namespace) -> int:
    from harness.fleet.errors import FleetError
    from harness.fleet.store import StoreError

    try:
        return _run(args)
    except (FleetError, StoreError) as exc:
        print(f"harness fleet {args.fleet_command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


def _run(args: argparse.Namespace) -> int:
    from harness.fleet import client
    from harness.fleet.errors import FleetError

    command = args.fleet_command
    if command == "worker":
        from harness.fleet.worker import serve

        if not args.store:
            raise FleetError("give --store DIR (or $HARNESS_FLEET_STORE): where the sealed runs go")
        if args.simulated < 0:
            raise FleetError("--simulated takes a number of jobs, 0 or more")
        return serve(args.bench, args.broker, args.store, args.simulated, args.work)
    if command == "submit":
        from harness.resources import builtin_rig

        return client.submit(args.rig or builtin_rig(), args.bench, args.suite, args.check, args.defect, args.reruns,
                             args.broker)
    if command == "matrix":
        from harness.fleet.matrix import matrix
        from harness.resources import builtin_rig

        return matrix(args.rigs or [builtin_rig()], args.defects, args.local, args.bench, args.broker, args.out,
                      args.timeout)
    if command == "status":
        if args.interval <= 0:
            raise FleetError("--interval takes a number of seconds above 0")
        return client.status(args.job, args.broker, args.watch, args.interval)
    if command == "fetch":
        return client.fetch(args.job, args.to, args.broker, args.store)
    return client.cancel(args.job, args.broker)
