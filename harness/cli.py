"""The `harness` command. Thin: each subcommand hands over to the module that owns the work.

Exit codes everywhere: 0 success / every applicable clause passed, 1 a clause failed or was
inconclusive, 2 bad configuration or usage (with a message naming file, line and field); 141 when
whoever read the output stopped reading (``harness suites | head``), without a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2
EXIT_READER_GONE = 128 + 13  # the reader of stdout went away: what a program killed by SIGPIPE reports
# `harness sim DEVICE`: the module whose main(argv) runs it (imported only when asked for).
SIMULATORS = {"meter": "harness.simulators.meter", "heat-meter": "harness.simulators.heat_meter",
              "concentrator": "harness.simulators.concentrator", "mqtt-broker": "harness.simulators.mqtt_broker",
              "controller": "harness.simulators.controller", "dlms-meter": "harness.simulators.dlms_meter.cli",
              "amr-server": "harness.simulators.amr_server.main"}


def _parser() -> argparse.ArgumentParser:
    from harness import __version__

    p = argparse.ArgumentParser(prog="harness", description="Certify energy equipment against the Kazakhstan "
                                "unified energy-management Rules (ch. 9-15).")
    p.add_argument("--version", action="version", version=f"tek-harness {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    c = sub.add_parser("certify", help="run the conformance suites against a rig and give clause verdicts")
    c.add_argument("rig", nargs="?", type=Path, help="rig YAML (default: the built-in simulated meter rig)")
    c.add_argument("--resume", type=Path, metavar="OUTDIR",
                   help="complete a stopped run: keep its finished checks, run the rest, same options")
    c.add_argument("--out", type=Path, help="output directory (default harness-out/<UTC time>-<rig>/)")
    c.add_argument("--suite", action="append", default=[], metavar="NAME",
                   help="run only this suite (repeatable); the run is then not certification-grade")
    c.add_argument("--check", action="append", default=[], metavar="ID",
                   help="run only this check, e.g. KZ-95-07, or DUT:ID on that DUT only (repeatable); "
                        "not certification-grade")
    c.add_argument("--defect", action="append", default=[], metavar="NAME",
                   help="seed this defect into every simulated DUT (repeatable)")
    c.add_argument("--no-transcript", action="store_true", help="do not record Modbus exchanges")
    c.add_argument("--reruns", type=int, metavar="N",
                   help="re-run a failing check up to N times (default: the rig's reruns, 2); a pass on a "
                        "re-run is FLAKY")
    c.add_argument("-v", "--verbose", action="store_true", help="show pytest's own output too")
    _lang_option(c, "the language of the certificate and this summary (default: the rig's lab.language, else en)")
    _signing_options(c)

    r = sub.add_parser("report", help="rebuild certificate.html and the Allure report of a run, and re-sign it")
    r.add_argument("outdir", type=Path)
    _lang_option(r, "the language of the rebuilt reports (default: the one the certificate names)")
    _signing_options(r)

    v = sub.add_parser("verify", help="check a run's signature and the SHA-256 of every evidence file")
    v.add_argument("outdir", type=Path)
    v.add_argument("--trust", type=Path, metavar="CERT.pem",
                   help="the lab certificate the run must be signed with (otherwise any valid signer is named)")

    b = sub.add_parser("bundle", help="one archive of a sealed run for the ICI operator")
    b.add_argument("outdir", type=Path)
    b.add_argument("-o", "--output", type=Path, help="archive path (default OUTDIR.tar.gz)")

    keys = sub.add_parser("keys", help="the lab's signing key")
    keys_sub = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    ki = keys_sub.add_parser("init", help="make a lab key and a self-signed X.509 certificate")
    ki.add_argument("--name", required=True, help="the lab's name, as the certificate should show it")
    ki.add_argument("--force", action="store_true", help="replace an existing key")
    _signing_options(ki)
    ks = keys_sub.add_parser("show", help="where the lab key is and whose it is")
    _signing_options(ks)

    k = sub.add_parser("check", help="validate profile and rig files")
    k.add_argument("files", nargs="+", type=Path)

    s = sub.add_parser("schema", help="print the JSON Schema of a profile or rig (for editors)")
    s.add_argument("kind", choices=["profile", "rig"])

    sim = sub.add_parser("sim", help="run a simulated device (for rigs and by hand)")
    sim.add_argument("device", choices=sorted(SIMULATORS))
    sim.add_argument("args", nargs=argparse.REMAINDER, help="device options; see `harness sim meter --help`")

    rp = sub.add_parser("replay", help="send a kept robustness reproducer (pcap) to a rig's DUT again")
    rp.add_argument("pcap", type=Path, help="a reproducer from a run's reproducers/ directory (a serial line's: "
                    "its pcap or its JSON)")
    rp.add_argument("--rig", type=Path, required=True, help="rig YAML whose DUT receives it")
    rp.add_argument("--dut", metavar="NAME", help="the DUT (needed when the rig has several)")
    rp.add_argument("--defect", action="append", default=[], metavar="NAME",
                    help="seed this defect into a simulated DUT (repeatable)")
    rp.add_argument("--out", type=Path, help="where the bench keeps logs and transcript (default: a temp dir)")

    sub.add_parser("suites", help="list the conformance suites and their checks")
    from harness.fleet.cli import add_parser as add_fleet

    add_fleet(sub)
    return p


def _lang_option(p: argparse.ArgumentParser, text: str) -> None:
    from harness.reporting.i18n import languages

    p.add_argument("--lang", choices=languages(), help=text)


def _signing_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--signer", default="ed25519-x509", help="signing plugin (default ed25519-x509)")
    p.add_argument("--key-dir", type=Path, help="the lab key's directory (default $HARNESS_KEY_DIR or "
                   "~/.config/tek-harness/lab-key)")


def main(argv: list[str] | None = None) -> int:
    """The command; a reader that stops reading (``harness suites | head``) ends it quietly, not in a traceback."""
    _fewer_collections()
    try:
        code = _main(sys.argv[1:] if argv is None else argv)
        sys.stdout.flush()  # here, where a closed pipe is caught, not at interpreter exit
        return code
    except BrokenPipeError:
        # Whatever is still buffered cannot be written; point stdout at /dev/null so exit's flush is silent.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_READER_GONE


def _fewer_collections() -> None:
    """A `harness` process allocates ~90,000 long-lived objects while it imports (pydantic models, pytest, the
    suites), and the cycle collector, run every 700 allocations, walks them again and again: ~10 % of the start-up
    CPU of every certify run and simulator (benchmarks/startup_cost.py). Collecting young objects every 10,000
    allocations instead keeps that work off the start-up; garbage cycles are still freed, a little later."""
    import gc

    _gen0, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(10_000, gen1, gen2)


def _main(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[0] == "sim":  # the simulator parses its own options (incl. --help)
        if argv[1] not in SIMULATORS:
            print(f"harness sim: unknown device {argv[1]!r}; devices: {', '.join(SIMULATORS)}", file=sys.stderr)
            return EXIT_USAGE
        import importlib

        return int(importlib.import_module(SIMULATORS[argv[1]]).main(argv[2:]))
    args = _parser().parse_args(argv)
    if args.command == "certify":
        from harness.certify import certify, resume

        if args.resume:
            if args.rig or args.out or args.suite or args.check or args.defect or args.reruns is not None or args.lang:
                print("harness certify: --resume takes the run's own options from OUTDIR/run.json; give only "
                      "--resume OUTDIR", file=sys.stderr)
                return EXIT_USAGE
            return resume(args.resume, verbose=args.verbose, key_dir=args.key_dir)
        return certify(rig_path=args.rig, out=args.out, suites=args.suite, defects=args.defect,
                       transcript=not args.no_transcript, verbose=args.verbose, checks=args.check,
                       reruns=args.reruns, signer=args.signer, key_dir=args.key_dir, lang=args.lang)
    if args.command in ("report", "verify", "bundle", "keys"):
        from harness import evidence_cli

        return int(getattr(evidence_cli, args.command)(args))
    if args.command == "check":
        return _check(args.files)
    if args.command == "schema":
        from harness.config import json_schema

        print(json_schema(args.kind))
        return EXIT_OK
    if args.command == "replay":
        from harness.replay import replay

        return replay(args.pcap, args.rig, args.dut, args.defect, args.out)
    if args.command == "fleet":
        from harness.fleet.cli import run as fleet

        return fleet(args)
    if args.command == "suites":
        from harness.certify import list_suites

        return list_suites()
    _parser().print_help()
    return EXIT_USAGE


def _check(files: list[Path]) -> int:
    from harness.config import ConfigError, LoadedRig, load_any
    from harness.config.errors import shorten

    status = EXIT_OK
    for path in files:
        try:
            loaded = load_any(path)
        except ConfigError as exc:
            print(exc, file=sys.stderr)
            status = EXIT_USAGE
            continue
        if isinstance(loaded, LoadedRig):
            print(f"{path}: rig {shorten(repr(loaded.rig.name))} OK ({len(loaded.rig.duts)} DUT(s), profiles valid)")
        else:  # names are free text: a valid file may still hold a megabyte in one
            print(f"{path}: profile {shorten(f'{loaded.vendor} {loaded.model}')} ({loaded.kind}) OK")
    return status


if __name__ == "__main__":
    raise SystemExit(main())
