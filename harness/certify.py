"""`harness certify`: pytest with the harness plugin and a rig, then the table of clause verdicts.

It prepares the output directory (with copies of the rig and profiles actually used), runs the
suites the plugins provide in-process, and turns verdicts.json into the exit code: 0 when every
applicable clause passed, 1 when any failed or was inconclusive, 2 for bad configuration.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from harness.reporting.signing import BUILTIN_SIGNER

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


def _err(message: str) -> int:
    print(f"harness certify: {message}", file=sys.stderr)
    return EXIT_USAGE


def _known_defects() -> set[str]:
    from harness.simulators.amr_server.defects import AMR_DEFECTS
    from harness.simulators.defects import CONCENTRATOR_DEFECTS, CONTROLLER_DEFECTS, HEAT_DEFECTS, METER_DEFECTS
    from harness.simulators.dlms_meter.defects import DLMS_METER_DEFECTS

    return set(METER_DEFECTS) | set(HEAT_DEFECTS) | set(CONCENTRATOR_DEFECTS) | set(CONTROLLER_DEFECTS) \
        | set(DLMS_METER_DEFECTS) | set(AMR_DEFECTS)


# pytest plugins that a certification run never uses but that pytest would import in every certify process
# (~0.15 s CPU of a single-check run): the test tooling installed beside the harness (parallel workers, per-test
# timeouts, the anyio and Hypothesis integrations) and built-ins for options certify never passes. Blocking
# them by name (`-p no:NAME`) keeps every other installed plugin, e.g. one a third-party suite relies on.
# allure-pytest stays: certify always writes Allure results (--alluredir). unraisableexception and threadexception
# only turn errors in __del__ and threads into pytest warnings, which a run never shows, and cost a forced full
# garbage collection at the end (~0.05 s).
UNUSED_PLUGINS = ("xdist", "xdist.looponfail", "timeout", "anyio", "hypothesispytest",
                  "doctest", "pastebin", "junitxml", "unraisableexception", "threadexception", "setuponly",
                  "setupplan", "stepwise")


def _plugin_args() -> list[str]:
    """Block the plugins a run does not use; load ours explicitly only when its entry point is not installed."""
    args = [arg for name in UNUSED_PLUGINS for arg in ("-p", f"no:{name}")]
    eps = metadata.entry_points(group="pytest11")
    return args if any(ep.value == "harness.pytest_plugin" for ep in eps) else [*args, "-p", "harness.pytest_plugin"]


@dataclass
class RunRequest:
    """What a run was asked to do; kept in OUTDIR/run.json so that --resume asks the same."""

    rig: str
    suites: list[str] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)
    defects: list[str] = field(default_factory=list)
    transcript: bool = True
    reruns: int | None = None
    signer: str = BUILTIN_SIGNER
    lang: str = ""  # the reports' language; "" = the rig's lab.language, else English
    started: float = 0.0
    config_sha256: dict[str, str] = field(default_factory=dict)  # rig and profiles as they were
    run_id: str = ""  # in the lab key directory's register (harness.reporting.custody)


def certify(rig_path: Path | None, out: Path | None, suites: list[str], defects: list[str],
            transcript: bool = True, verbose: bool = False, checks: list[str] | None = None,
            reruns: int | None = None, signer: str = BUILTIN_SIGNER, key_dir: Path | None = None,
            lang: str | None = None) -> int:
    from harness.resources import builtin_rig

    request = RunRequest(rig=str((rig_path or builtin_rig()).resolve()), suites=suites, checks=checks or [],
                         defects=defects, transcript=transcript, reruns=reruns, signer=signer, lang=lang or "")
    return _run(request, out, verbose=verbose, key_dir=key_dir, resume=False)


def resume(out: Path, verbose: bool = False, key_dir: Path | None = None) -> int:
    """Complete a run that was stopped (even by kill -9): keep its finished checks, run the rest."""
    try:
        request = RunRequest(**json.loads((out / "run.json").read_text(encoding="utf-8")))
    except FileNotFoundError:
        return _err(f"{out} holds no run to resume (no run.json)")
    except (ValueError, TypeError) as exc:
        return _err(f"{out}/run.json is not readable: {exc}")
    from harness.reporting.custody import resume_problem
    from harness.reporting.signing import default_key_dir

    problem = resume_problem(out, request.signer, key_dir or default_key_dir())
    if problem:
        return _err(f"not resuming {out}: {problem}")
    return _run(request, out, verbose=verbose, key_dir=key_dir, resume=True)


def _config_hashes(loaded: Any) -> dict[str, str]:
    hashes = {"rig": hashlib.sha256(loaded.path.read_bytes()).hexdigest()}
    hashes.update({f"profile:{name}": loaded.profile_hash(name) for name in loaded.profiles})
    return hashes


def _run(request: RunRequest, out: Path | None, *, verbose: bool, key_dir: Path | None, resume: bool) -> int:
    import pytest

    from harness import registry
    from harness.config import ConfigError, load_rig
    from harness.reporting import custody
    from harness.reporting.outdir import default_out
    from harness.reporting.signing import default_key_dir

    suites, defects, checks = request.suites, request.defects, request.checks
    try:
        loaded = load_rig(Path(request.rig))
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_USAGE
    from harness.reporting.i18n import languages

    lang = request.lang or (loaded.rig.lab.language if loaded.rig.lab else "") or "en"
    if lang not in languages():
        return _err(f"no catalog for language {lang!r}; languages: {', '.join(languages())}")
    if request.signer not in registry.signers():
        return _err(f"unknown signer {request.signer!r}; signers: {', '.join(registry.signers())}")
    available = registry.suites()
    unknown = [s for s in suites if s not in available]
    if unknown:
        return _err(f"unknown suite(s) {', '.join(unknown)}; suites: {', '.join(available)}")
    if defects:
        if not any(d.launch for d in loaded.rig.duts.values()):
            return _err("--defect needs a simulated DUT (one with `launch`) in the rig")
        bad = [d for d in defects if d not in _known_defects()]
        if bad:
            return _err(f"unknown defect(s) {', '.join(bad)}; see `harness sim meter --list-defects`, "
                        "`harness sim heat-meter --list-defects`, `harness sim concentrator --list-defects`, "
                        "`harness sim controller --list-defects` and `harness sim amr-server --list-defects`")

    out = out or default_out(loaded.rig.name)
    if resume:
        if request.config_sha256 and _config_hashes(loaded) != request.config_sha256:
            return _err(f"the rig or a profile changed since the run in {out} started; resuming would mix "
                        "two configurations — start a new run")
        custody.reopen(out, key_dir or default_key_dir())  # the seal, if any, is made anew at the end
        (out / "verdicts.json").unlink(missing_ok=True)
    else:
        if (out / "checks.jsonl").exists() or (out / "run.json").exists():
            return _err(f"{out} already holds a run; choose another --out (or --resume it)")
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            return _err(f"{out} is not an empty folder: the seal would cover (and the bundle hand over) files the "
                        "harness did not write; choose a new or empty --out")
        request.run_id = custody.new_run_id()
        try:
            custody.record(key_dir or default_key_dir(), request.run_id, "started")
        except OSError as exc:
            return _err(f"cannot record the run in the lab key directory's register ({exc.strerror or exc}: "
                        f"{exc.filename}); only runs recorded there can be resumed and sealed")
        out.mkdir(parents=True, exist_ok=True)
        _keep_configuration(loaded, out)
        request.started, request.config_sha256 = time.time(), _config_hashes(loaded)
        (out / "run.json").write_text(json.dumps(asdict(request), indent=2) + "\n", encoding="utf-8")

    # Every suite is collected; --suite/--check deselect in the plugin, so the run knows what it skipped.
    args = [str(s.path) for s in available.values()] + [
        "--rig", str(loaded.path), "--harness-out", str(out), "--alluredir", str(out / "allure-results"),
        "-c", os.devnull, "--rootdir", str(Path(__file__).resolve().parent), "-p", "no:cacheprovider",
        "-o", "python_files=test_*.py",
    ]
    for s in suites:
        args += ["--harness-suite", s]
    for d in defects:
        args += ["--harness-defect", d]
    for c in checks or []:
        args += ["--harness-check", c]
    if not request.transcript:
        args.append("--harness-no-transcript")
    if request.reruns is not None:
        args += ["--harness-reruns", str(request.reruns)]
    if resume:
        args.append("--harness-resume")
    args += ["-v"] if verbose else ["-p", "no:terminal"]
    args += _plugin_args()

    from harness.reporting.i18n import _, language

    with language(lang):  # the progress lines in the run's language too
        verb = _("Resuming rig {rig} ({n} DUT(s)) → {out}") if resume else \
            _("Certifying rig {rig} ({n} DUT(s)) → {out}")
        print(verb.format(rig=repr(loaded.rig.name), n=len(loaded.rig.duts), out=out))
        if defects:
            print("  " + _("seeded defects: {names}").format(names=", ".join(defects)))
        t0 = time.monotonic()
        code = pytest.main(args)
    elapsed = time.monotonic() - t0
    verdicts_path = out / "verdicts.json"
    if code in (pytest.ExitCode.USAGE_ERROR, pytest.ExitCode.INTERNAL_ERROR) or not verdicts_path.exists():
        return _err(f"the run could not start (pytest exit {int(code)}); rerun with -v for details")
    verdicts = json.loads(verdicts_path.read_text(encoding="utf-8"))
    if code == pytest.ExitCode.INTERRUPTED or verdicts.get("interrupted"):
        print("\nthe run was interrupted: checks that did not finish are listed as not run", file=sys.stderr)
    sealed = _finish(out, request.signer, key_dir, loaded.rig, lang)
    _print_summary(verdicts, out, elapsed, sealed, lang)
    complete = verdicts["certification_grade"] or not verdicts.get("interrupted")
    ok = verdicts["verdict"] in ("PASS", "N/A") and complete and sealed is not None
    return EXIT_OK if ok else EXIT_FAIL


def _print_summary(verdicts: dict[str, Any], out: Path, elapsed: float, sealed: bool | None, lang: str) -> None:
    """Why not PASS, the clause table, the verdict, where the evidence is — in the run's language."""
    from harness.reporting.i18n import _, language
    from harness.reporting.table import clause_table

    with language(lang):
        print()
        print(clause_table(verdicts))
        print("\n" + _("{seconds} s; evidence in {out}/").format(seconds=f"{elapsed:.1f}", out=out))
        if sealed is not None:
            files = "certificate.json, certificate.html" + (", allure-report.html" if sealed else "")
            print("  " + _("{files} — signed (certificate.sig.json, manifest.json); check with {command}").format(
                files=files, command=f"`harness verify {out}`"))
        if verdicts.get("interrupted"):
            print("  " + _("complete it with {command}").format(command=f"`harness certify --resume {out}`"))


def _finish(out: Path, signer: str, key_dir: Path | None, rig: Any, lang: str) -> bool | None:
    """Certificate, reports and seal; True/False: with/without the Allure report; None: not sealed."""
    from harness.redaction import Redactor, rig_secrets
    from harness.reporting.finalize import ALLURE_HTML, allure_wanted, finalize, print_notes
    from harness.reporting.seal import SealError
    from harness.reporting.signing import KeyMissing, default_key_dir

    try:
        result = finalize(out, signer=signer, key_dir=key_dir or default_key_dir(),
                          lab=rig.lab.model_dump() if rig.lab else None, allure_report=allure_wanted(),
                          redactor=Redactor(rig_secrets(rig)), lang=lang)
    except KeyMissing as exc:  # checked before certificate.json is written: nothing half-sealed is left
        print(f"harness certify: no certificate made, it could not be signed: {exc}; then "
              f"`harness certify --resume {out}` makes and signs it", file=sys.stderr)
        return None
    except SealError as exc:
        print(f"harness certify: the certificate is not signed: {exc}", file=sys.stderr)
        return None
    print_notes(result)
    return (out / ALLURE_HTML).exists()


def _keep_configuration(loaded: Any, out: Path) -> None:
    """The rig and profiles as used are part of the evidence — with the rig's secrets redacted (each as a
    marker and its SHA-256, harness.redaction); run.json keeps the SHA-256 of the originals."""
    from harness.redaction import Redactor, rig_secrets, write_redacted

    redactor = Redactor(rig_secrets(loaded.rig))
    dest = out / "config"
    write_redacted(dest / f"rig-{loaded.path.name}", loaded.path.read_bytes(), redactor)
    for dut, path in loaded.profile_paths.items():  # a profile that extends another: resolved (config/extends.py)
        write_redacted(dest / f"profile-{path.name}", loaded.profile_evidence(dut), redactor)


class _Collector:
    def __init__(self) -> None:
        self.checks: list[tuple[str, str, str]] = []

    def pytest_collection_modifyitems(self, items: list[Any]) -> None:
        for item in items:
            mark = item.get_closest_marker("check")
            if mark:
                self.checks.append((Path(str(item.path)).parent.name, mark.args[0], mark.args[1]))


def list_suites() -> int:
    import pytest

    from harness import registry

    suites = registry.suites()
    collector = _Collector()
    pytest.main([str(s.path) for s in suites.values()] + ["--collect-only", "-p", "no:terminal", "-c",
                                                          os.devnull, "-p", "no:cacheprovider",
                                                          *_plugin_args()], plugins=[collector])
    for name, spec in suites.items():
        print(f"{name}: {spec.description}")
        for suite, check_id, title in sorted(set(collector.checks)):
            if suite == name:
                print(f"  {check_id}  {title}")
    return EXIT_OK
