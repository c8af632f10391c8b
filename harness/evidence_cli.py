"""`harness report | verify | bundle | keys`: what happens to a run's evidence after the run.

Exit codes as everywhere: 0 fine, 1 the evidence does not hold (a changed file, a bad signature),
2 usage (no such run, no key).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


def _err(command: str, message: str, code: int = EXIT_USAGE) -> int:
    print(f"harness {command}: {message}", file=sys.stderr)
    return code


def _key_dir(args: argparse.Namespace) -> Path:
    from harness.reporting.signing import default_key_dir

    return args.key_dir or default_key_dir()


def verify(args: argparse.Namespace) -> int:
    from harness.reporting.seal import SealError, fingerprint_of_pem
    from harness.reporting.seal import verify as verify_seal

    if not args.outdir.is_dir():
        return _err("verify", f"{args.outdir} is not a directory")
    trusted = None
    if args.trust:
        try:
            trusted = fingerprint_of_pem(args.trust.read_bytes(), f"--trust {args.trust}")
        except OSError as exc:
            return _err("verify", f"cannot read {args.trust}: {exc.strerror or exc}")
        except SealError as exc:
            return _err("verify", str(exc))
    result = verify_seal(args.outdir, trusted_fingerprint=trusted)
    if result.ok:
        print(f"{args.outdir}: OK — {result.files} evidence files match manifest.json; signature by "
              f"{result.subject} ({result.signer}, certificate SHA-256 {result.fingerprint})")
        if trusted is None:
            print("  the signer was not compared with a trusted certificate; pass --trust LAB-CERT.pem to do so")
        return EXIT_OK
    print(f"{args.outdir}: NOT VALID — {len(result.problems)} problem(s):", file=sys.stderr)
    for problem in result.problems:
        print(f"  - {problem}", file=sys.stderr)
    return EXIT_FAIL


def report(args: argparse.Namespace) -> int:
    """Rebuild the readable reports of a sealed run (e.g. once Allure is installed) and re-sign it.

    The seal is checked first, against this lab's own certificate: re-signing must never launder evidence
    changed after the run, nor adopt a run somebody else sealed (harness.reporting.custody).
    """
    from harness.reporting.custody import seal_problem
    from harness.reporting.finalize import ALLURE_HTML, HTML, finalize, print_notes
    from harness.reporting.i18n import UnknownLanguage
    from harness.reporting.seal import SealError
    from harness.reporting.signing import KeyMissing

    out: Path = args.outdir
    if not (out / "certificate.json").exists():
        return _err("report", f"{out} holds no certificate.json (run `harness certify` first)")
    problem = seal_problem(out, args.signer, _key_dir(args))
    if problem:
        return _err("report", f"{out} is not re-signed: it is not sealed intact by this lab: {problem}")
    lab = json.loads((out / "certificate.json").read_text(encoding="utf-8")).get("lab")
    try:
        result = finalize(out, signer=args.signer, key_dir=_key_dir(args), lab=lab, rebuild_certificate=False,
                          lang=getattr(args, "lang", None))
    except (KeyMissing, SealError, UnknownLanguage) as exc:
        return _err("report", str(exc))
    print_notes(result)
    built = [HTML] + ([ALLURE_HTML] if (out / ALLURE_HTML).exists() else [])
    print(f"{out}: {', '.join(built)} written; re-signed by {result.signer_subject}")
    return EXIT_OK


def bundle(args: argparse.Namespace) -> int:
    from harness.reporting.bundle import BundleRefused
    from harness.reporting.bundle import bundle as make_bundle

    if not args.outdir.is_dir():
        return _err("bundle", f"{args.outdir} is not a directory")
    try:
        dest = make_bundle(args.outdir, args.output)
    except BundleRefused as exc:
        return _err("bundle", str(exc), EXIT_FAIL)
    print(f"{dest} ({dest.stat().st_size / 1e6:.1f} MB): certificate, signature, manifest, evidence, rig and "
          f"profiles; the receiver unpacks it and runs `harness verify` on the folder inside")
    return EXIT_OK


def keys(args: argparse.Namespace) -> int:
    from harness import registry
    from harness.reporting.signing import CERT_FILE, KeyMissing

    spec = registry.signers().get(args.signer)
    if spec is None:
        return _err("keys", f"unknown signer {args.signer!r}; signers: {', '.join(registry.signers())}")
    key_dir = _key_dir(args)
    if args.keys_command == "init":
        if spec.init is None:
            return _err("keys", f"signer {args.signer} does not make keys; its keys come from elsewhere")
        try:
            described = spec.init(key_dir, args.name, force=args.force)
        except FileExistsError as exc:
            return _err("keys", str(exc))
        print(f"lab key made in {key_dir}: {described}\n  give {key_dir / CERT_FILE} to whoever verifies your "
              f"certificates (`harness verify --trust`)")
        return EXIT_OK
    try:
        signer = spec.load(key_dir)
    except KeyMissing as exc:
        return _err("keys", str(exc))
    block = signer.sign(b"")
    print(f"{key_dir}: {block.get('subject')} ({args.signer}), certificate SHA-256 {block.get('fingerprint_sha256')}")
    return EXIT_OK
