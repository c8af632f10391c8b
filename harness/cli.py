"""The `harness` command. Thin: each subcommand hands over to the module that owns the work.

Exit codes everywhere: 0 success / every applicable clause passed, 1 a clause failed or was
inconclusive, 2 bad configuration or usage (with a message naming file, line and field).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2
# `harness sim DEVICE`: the module whose main(argv) runs it (imported only when asked for).
SIMULATORS = {"meter": "harness.simulators.meter", "heat-meter": "harness.simulators.heat_meter"}


def _parser() -> argparse.ArgumentParser:
    from harness import __version__

    p = argparse.ArgumentParser(prog="harness", description="Certify energy equipment against the Kazakhstan "
                                "unified energy-management Rules (ch. 9-15).")
    p.add_argument("--version", action="version", version=f"tek-harness {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    c = sub.add_parser("certify", help="run the conformance suites against a rig and give clause verdicts")
    c.add_argument("rig", nargs="?", type=Path, help="rig YAML (default: the built-in simulated meter rig)")
    c.add_argument("--out", type=Path, help="output directory (default harness-out/<UTC time>-<rig>/)")
    c.add_argument("--suite", action="append", default=[], metavar="NAME",
                   help="run only this suite (repeatable); the run is then not certification-grade")
    c.add_argument("--check", action="append", default=[], metavar="ID",
                   help="run only this check, e.g. KZ-95-07 (repeatable); not certification-grade")
    c.add_argument("--defect", action="append", default=[], metavar="NAME",
                   help="seed this defect into every simulated DUT (repeatable)")
    c.add_argument("--no-transcript", action="store_true", help="do not record Modbus exchanges")
    c.add_argument("-v", "--verbose", action="store_true", help="show pytest's own output too")

    k = sub.add_parser("check", help="validate profile and rig files")
    k.add_argument("files", nargs="+", type=Path)

    s = sub.add_parser("schema", help="print the JSON Schema of a profile or rig (for editors)")
    s.add_argument("kind", choices=["profile", "rig"])

    sim = sub.add_parser("sim", help="run a simulated device (for rigs and by hand)")
    sim.add_argument("device", choices=sorted(SIMULATORS))
    sim.add_argument("args", nargs=argparse.REMAINDER, help="device options; see `harness sim meter --help`")

    sub.add_parser("suites", help="list the conformance suites and their checks")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) >= 2 and argv[0] == "sim":  # the simulator parses its own options (incl. --help)
        if argv[1] not in SIMULATORS:
            print(f"harness sim: unknown device {argv[1]!r}; devices: {', '.join(SIMULATORS)}", file=sys.stderr)
            return EXIT_USAGE
        import importlib

        return int(importlib.import_module(SIMULATORS[argv[1]]).main(argv[2:]))
    args = _parser().parse_args(argv)
    if args.command == "certify":
        from harness.certify import certify

        return certify(rig_path=args.rig, out=args.out, suites=args.suite, defects=args.defect,
                       transcript=not args.no_transcript, verbose=args.verbose, checks=args.check)
    if args.command == "check":
        return _check(args.files)
    if args.command == "schema":
        from harness.config import json_schema

        print(json_schema(args.kind))
        return EXIT_OK
    if args.command == "suites":
        from harness.certify import list_suites

        return list_suites()
    _parser().print_help()
    return EXIT_USAGE


def _check(files: list[Path]) -> int:
    from harness.config import ConfigError, LoadedRig, load_any

    status = EXIT_OK
    for path in files:
        try:
            loaded = load_any(path)
        except ConfigError as exc:
            print(exc, file=sys.stderr)
            status = EXIT_USAGE
            continue
        if isinstance(loaded, LoadedRig):
            print(f"{path}: rig {loaded.rig.name!r} OK ({len(loaded.rig.duts)} DUT(s), profiles valid)")
        else:
            print(f"{path}: profile {loaded.vendor} {loaded.model} ({loaded.kind}) OK")
    return status


if __name__ == "__main__":
    raise SystemExit(main())
