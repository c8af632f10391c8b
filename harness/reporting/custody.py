"""Chain of custody: which runs this lab's key may seal.

The lab key signs only evidence this harness produced under that key. The lab's key directory
keeps a register of the runs started and sealed with it (``<key dir>/runs/<run id>.started`` and
``.sealed``): a run folder can be copied and edited, the register cannot be reached from it. The
rules, in one place:

* ``harness certify --resume`` continues a run only if this key directory started it, and — when
  anything of a seal exists in the folder (certificate, manifest or signature) or the register says
  it was sealed — only if that seal holds and was made with this lab's own certificate.
* ``harness report`` re-signs only a run whose seal holds and was made with this lab's certificate.
* A sealed run that ``--resume`` reopens (an interrupted run, sealed as far as it got) leaves its
  sealed digests in the register (``.reopened.json``): until it is sealed again, its append-only
  evidence (the run's ``*.jsonl``, ``logs/*.log``) may only grow and its configuration
  (``config/``, ``run.json``) must not change, or a later resume is refused.

So evidence altered after its seal is never sealed again: deleting the signature, the whole seal,
or sealing with another key all end in a refusal.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

from harness.reporting.seal import CERTIFICATE, MANIFEST, SIGNATURE, verify

REGISTER = "runs"
RUN_FILE = "run.json"


def new_run_id() -> str:
    return uuid.uuid4().hex


def _mark(key_dir: Path, run_id: str, event: str) -> Path:
    if not run_id or not all(c in "0123456789abcdef" for c in run_id):
        raise ValueError(f"not a run id: {run_id!r}")
    return key_dir / REGISTER / f"{run_id}.{event}"


def record(key_dir: Path, run_id: str, event: str) -> None:
    """Note in the lab's register that run ``run_id`` was ``started`` or ``sealed`` (with the time)."""
    path = _mark(key_dir, run_id, event)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.write_text(time.strftime("%Y-%m-%dT%H:%M:%SZ\n", time.gmtime()), encoding="utf-8")


def recorded(key_dir: Path, run_id: str, event: str) -> bool:
    try:
        return _mark(key_dir, run_id, event).exists()
    except ValueError:
        return False


def run_id_of(out: Path) -> str:
    """The run id in OUTDIR/run.json ('' if none can be read)."""
    try:
        value = json.loads((out / RUN_FILE).read_text(encoding="utf-8")).get("run_id", "")
    except (OSError, ValueError, AttributeError):
        return ""
    return value if isinstance(value, str) else ""


def own_fingerprint(signer_name: str, key_dir: Path) -> str:
    """The SHA-256 fingerprint of this lab's certificate for ``signer_name`` (raises KeyMissing)."""
    from harness.reporting.seal import load_signer

    return str(load_signer(signer_name, key_dir).sign(b"").get("fingerprint_sha256", ""))


def summary(problems: list[str]) -> str:
    more = f" (and {len(problems) - 1} more; `harness verify` lists them)" if len(problems) > 1 else ""
    return problems[0] + more


def seal_problem(out: Path, signer_name: str, key_dir: Path) -> str | None:
    """Why the seal in ``out`` is not this lab's intact seal, or None when it is."""
    from harness.reporting.seal import SealError
    from harness.reporting.signing import KeyMissing

    try:
        fingerprint = own_fingerprint(signer_name, key_dir)
    except (KeyMissing, SealError) as exc:
        return str(exc)
    result = verify(out, trusted_fingerprint=fingerprint)
    return None if result.ok else summary(result.problems)


def resume_problem(out: Path, signer_name: str, key_dir: Path) -> str | None:
    """Why the run in ``out`` must not be resumed (and so sealed) with the key in ``key_dir``, or None."""
    run_id = run_id_of(out)
    if not recorded(key_dir, run_id, "started"):
        return (f"this run was not started with the lab key directory {key_dir} (run id {run_id or 'missing'} "
                "is not in its register); start a new run")
    sealed_parts = [name for name in (CERTIFICATE, MANIFEST, SIGNATURE) if (out / name).exists()]
    if recorded(key_dir, run_id, "sealed") and len(sealed_parts) < 3:
        missing = ", ".join(n for n in (CERTIFICATE, MANIFEST, SIGNATURE) if n not in sealed_parts)
        return f"this run was sealed by this lab before and its {missing} is gone; start a new run"
    if sealed_parts:
        problem = seal_problem(out, signer_name, key_dir)
        if problem:
            return f"its seal does not hold for this lab: {problem}"
    elif recorded(key_dir, run_id, "reopened.json"):
        return reopened_problem(out, key_dir, run_id)
    return None


def _kept(rel: str) -> str | None:
    """How evidence of a reopened run may change until its next seal: 'grows', 'frozen' or None (rewritten)."""
    if ("/" not in rel and rel.endswith(".jsonl")) or (rel.startswith("logs/") and rel.endswith(".log")):
        return "grows"
    if rel.startswith("config/") or rel == RUN_FILE:
        return "frozen"
    return None


def reopen(out: Path, key_dir: Path) -> None:
    """Before a resume takes a sealed run apart (its certificate and seal are made anew at the end): keep
    what was sealed in the register, so the evidence can be held to it until the next seal."""
    run_id = run_id_of(out)
    if not (out / MANIFEST).is_file() or not recorded(key_dir, run_id, "started"):
        return
    files = json.loads((out / MANIFEST).read_text(encoding="utf-8")).get("files", {})
    kept = {rel: {"size": (out / rel).stat().st_size, "sha256": digest, "kept": _kept(rel)}
            for rel, digest in files.items() if _kept(rel) and (out / rel).is_file()}
    path = _mark(key_dir, run_id, "reopened.json")
    path.write_text(json.dumps(kept, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    _mark(key_dir, run_id, "sealed").unlink(missing_ok=True)
    for name in (SIGNATURE, MANIFEST, CERTIFICATE):
        (out / name).unlink(missing_ok=True)


def reopened_problem(out: Path, key_dir: Path, run_id: str) -> str | None:
    """Did the evidence of a reopened run keep what was sealed? (append-only files grew, configuration same)"""
    import hashlib

    try:
        kept = json.loads(_mark(key_dir, run_id, "reopened.json").read_text(encoding="utf-8"))
        entries = sorted((str(rel), int(was["size"]), str(was["sha256"]), was.get("kept")) for rel, was in kept.items())
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        return f"the register's record of what was sealed is not readable ({exc}); start a new run"
    for rel, size_was, digest_was, kept_as in entries:
        path = out / rel
        if not path.is_file() or path.is_symlink():
            return f"{rel} was sealed before this run was resumed and is gone; start a new run"
        size = path.stat().st_size
        with path.open("rb") as f:
            prefix = hashlib.sha256(f.read(size_was)).hexdigest()
        if prefix != digest_was or size < size_was or (kept_as == "frozen" and size != size_was):
            return f"{rel} changed since it was sealed (before this run was resumed); start a new run"
    return None
