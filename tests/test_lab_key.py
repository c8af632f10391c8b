"""The lab key cannot split (issue 13, item 2): made under a lock, key and certificate written as one
pair, a private key file always 0600, and key and certificate checked to match before any signing."""

from __future__ import annotations

import multiprocessing
import os
import stat
import traceback
from pathlib import Path

import pytest

from harness.reporting.signing import CERT_FILE, KEY_FILE, Ed25519Signer, KeyMissing, init_ed25519, verify_ed25519

FIRST_RUNS = 100


def _first_run(key_dir: str, barrier, results) -> None:
    """What a first `harness certify` does at its end: make the lab key if there is none, then sign."""
    try:
        os.environ["HARNESS_KEY_DIR"] = key_dir
        from harness.reporting.finalize import ensure_key

        barrier.wait(timeout=60)
        ensure_key("ed25519-x509", Path(key_dir), "Concurrent Lab")
        block = Ed25519Signer(Path(key_dir)).sign(b"payload")
        results.put(("ok", block["fingerprint_sha256"], block["signature"], block["certificate_pem"]))
    except BaseException:
        results.put(("error", traceback.format_exc(), "", ""))


def test_a_hundred_concurrent_first_runs_leave_one_matching_key_pair(tmp_path):
    key_dir = tmp_path / "lab-key"
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(FIRST_RUNS), ctx.Queue()
    procs = [ctx.Process(target=_first_run, args=(str(key_dir), barrier, results)) for _ in range(FIRST_RUNS)]
    for p in procs:
        p.start()
    try:
        outcomes = [results.get(timeout=120) for _ in procs]
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
    errors = [o[1] for o in outcomes if o[0] != "ok"]
    assert not errors, f"{len(errors)} of {FIRST_RUNS} first runs failed; the first:\n{errors[0]}"
    assert {o[1] for o in outcomes} == {Ed25519Signer(key_dir).sign(b"")["fingerprint_sha256"]}
    for _, _, signature, cert_pem in outcomes:  # every run's signature verifies with the one certificate
        import base64

        fingerprint = outcomes[0][1]
        verify_ed25519(b"payload", {"signature": signature, "certificate_pem": cert_pem,
                                    "fingerprint_sha256": fingerprint})
        assert base64.b64decode(signature)
    assert sorted(p.name for p in key_dir.iterdir() if not p.name.startswith(".")) == [CERT_FILE, KEY_FILE, "runs"] \
        or sorted(p.name for p in key_dir.iterdir() if not p.name.startswith(".")) == [CERT_FILE, KEY_FILE]
    assert stat.S_IMODE((key_dir / KEY_FILE).stat().st_mode) == 0o600


def test_a_stale_temporary_key_file_never_makes_a_readable_key(tmp_path):
    key_dir = tmp_path / "k"
    key_dir.mkdir()
    stale = key_dir / (KEY_FILE + ".tmp")
    stale.write_text("left by a crash")
    stale.chmod(0o644)
    init_ed25519(key_dir, "Lab")
    assert stat.S_IMODE((key_dir / KEY_FILE).stat().st_mode) == 0o600
    old = os.umask(0)
    try:
        init_ed25519(key_dir, "Lab", force=True)
    finally:
        os.umask(old)
    assert stat.S_IMODE((key_dir / KEY_FILE).stat().st_mode) == 0o600


def test_a_key_and_certificate_of_different_pairs_refuse_to_sign(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    init_ed25519(a, "Lab A")
    init_ed25519(b, "Lab B")
    (a / CERT_FILE).write_bytes((b / CERT_FILE).read_bytes())  # a split pair
    with pytest.raises(KeyMissing, match="not one pair"):
        Ed25519Signer(a).sign(b"x")


def test_a_certificate_left_without_its_key_by_a_crash_is_made_anew(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    init_ed25519(b, "Other")
    a.mkdir()
    (a / CERT_FILE).write_bytes((b / CERT_FILE).read_bytes())  # the key was never written
    with pytest.raises(KeyMissing, match="no lab key"):
        Ed25519Signer(a)
    init_ed25519(a, "Lab A")
    assert Ed25519Signer(a).sign(b"")["subject"] == "O=Lab A,CN=Lab A"
