"""Chain of custody: the lab key signs only evidence this harness produced under that key.

Each test here reproduces one way altered evidence used to get the lab's signature (issue 13,
item 1): resume after deleting the signature, resume after deleting the whole seal, and `harness
report` on a run sealed with somebody else's key. `harness verify --trust <lab cert>` must never
say OK on such a run, and the command must refuse it (one line, exit 2).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from conftest import REGISTERS_RUN_GROUP, run_cli

from harness.reporting.seal import seal
from harness.reporting.signing import CERT_FILE, default_key_dir

# The finished run is conftest's sealed registers run, shared with test_evidence.py on one worker.
pytestmark = pytest.mark.xdist_group(REGISTERS_RUN_GROUP)


@pytest.fixture(scope="module")
def finished_run(sealed_registers_run: Path) -> Path:
    return sealed_registers_run


@pytest.fixture
def run_copy(finished_run, tmp_path) -> Path:
    dest = tmp_path / "copy"
    shutil.copytree(finished_run, dest)
    return dest


def lab_cert() -> str:
    return str(default_key_dir() / CERT_FILE)


def alter_a_verdict(out: Path) -> None:
    """What a forger would do: one check's verdict turned in checks.jsonl."""
    path = out / "checks.jsonl"
    text = path.read_text()
    assert '"verdict": "PASS"' in text or '"verdict":"PASS"' in text
    path.write_text(text.replace('"PASS"', '"FAIL"', 1))


def assert_not_valid_for_the_lab(out: Path) -> None:
    res = run_cli("verify", str(out), "--trust", lab_cert())
    assert res.returncode == 1 and "NOT VALID" in res.stderr, res.stdout + res.stderr


def assert_refused(res, *words: str) -> None:
    assert res.returncode == 2, res.stdout + res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr  # one clear line, no traceback
    for word in words:
        assert word in lines[0], lines[0]


def test_resume_refuses_altered_evidence_whose_signature_was_deleted(run_copy):
    alter_a_verdict(run_copy)
    (run_copy / "certificate.sig.json").unlink()
    res = run_cli("certify", "--resume", str(run_copy))
    assert_refused(res, "not resuming")
    assert_not_valid_for_the_lab(run_copy)


def test_resume_refuses_a_sealed_run_whose_whole_seal_was_deleted(run_copy):
    alter_a_verdict(run_copy)
    for name in ("certificate.sig.json", "manifest.json", "certificate.json"):
        (run_copy / name).unlink()
    res = run_cli("certify", "--resume", str(run_copy))
    assert_refused(res, "not resuming", "was sealed")
    assert_not_valid_for_the_lab(run_copy)


def test_resume_refuses_a_run_this_lab_never_started(run_copy):
    for name in ("certificate.sig.json", "manifest.json", "certificate.json"):
        (run_copy / name).unlink()
    request = json.loads((run_copy / "run.json").read_text())
    request["run_id"] = "0" * 32  # a forged identity, so the run does not look sealed
    (run_copy / "run.json").write_text(json.dumps(request))
    res = run_cli("certify", "--resume", str(run_copy))
    assert_refused(res, "not resuming", "not started")


def test_report_refuses_a_run_sealed_by_another_key(run_copy, tmp_path):
    alter_a_verdict(run_copy)
    own = tmp_path / "self-made-key"
    assert run_cli("keys", "init", "--name", "Forger", "--key-dir", str(own)).returncode == 0
    seal(run_copy, "ed25519-x509", own)  # the forger's seal holds on its own terms …
    assert run_cli("verify", str(run_copy)).returncode == 0
    res = run_cli("report", str(run_copy))  # … but the lab does not re-sign it
    assert_refused(res, "not re-signed", "CN=Forger")
    assert_not_valid_for_the_lab(run_copy)


def test_report_refuses_a_certificate_without_a_signature(run_copy):
    (run_copy / "certificate.sig.json").unlink()
    res = run_cli("report", str(run_copy))
    assert_refused(res, "not re-signed", "certificate.sig.json is missing")
    assert_not_valid_for_the_lab(run_copy)


def test_report_and_resume_accept_the_labs_own_intact_run(run_copy):
    res = run_cli("report", str(run_copy))
    assert res.returncode == 0, res.stderr
    res = run_cli("certify", "--resume", str(run_copy))
    assert res.returncode == 0, res.stdout + res.stderr
    assert run_cli("verify", str(run_copy), "--trust", lab_cert()).returncode == 0
    assert os.environ["HARNESS_KEY_DIR"] == str(default_key_dir())


def test_a_reopened_run_killed_before_its_new_seal_resumes_but_not_after_an_edit(run_copy, tmp_path):
    """`--resume` of a sealed (interrupted) run takes its seal apart first; killed right then, the run has
    no seal at all. It may be resumed again — but not once its sealed evidence was edited meanwhile."""
    from harness.reporting import custody

    edited = tmp_path / "edited"
    shutil.copytree(run_copy, edited)
    custody.reopen(run_copy, default_key_dir())  # what the resume does before it runs; then kill -9
    custody.reopen(edited, default_key_dir())
    assert not (run_copy / "certificate.sig.json").exists() and not (run_copy / "certificate.json").exists()
    alter_a_verdict(edited)
    res = run_cli("certify", "--resume", str(edited))
    assert_refused(res, "not resuming", "checks.jsonl changed since it was sealed")
    res = run_cli("certify", "--resume", str(run_copy))
    assert res.returncode == 0, res.stdout + res.stderr
    assert run_cli("verify", str(run_copy), "--trust", lab_cert()).returncode == 0


def test_a_run_without_a_lab_key_leaves_no_certificate_and_resumes_signed_once_there_is_one(tmp_path):
    key_dir, out = tmp_path / "new-lab-key", tmp_path / "run"
    res = run_cli("certify", "--out", str(out), "--suite", "registers", "--key-dir", str(key_dir))
    assert res.returncode == 1 and "harness keys init" in res.stderr and "--resume" in res.stderr, res.stderr
    assert not (out / "certificate.json").exists() and (out / "checks.jsonl").exists()
    assert run_cli("keys", "init", "--name", "Late Lab", "--key-dir", str(key_dir)).returncode == 0
    res = run_cli("certify", "--resume", str(out), "--key-dir", str(key_dir))
    assert res.returncode == 0, res.stdout + res.stderr
    assert run_cli("verify", str(out), "--trust", str(key_dir / CERT_FILE)).returncode == 0


def test_a_run_that_cannot_be_recorded_in_the_register_does_not_start(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    out = tmp_path / "run"
    res = run_cli("certify", "--out", str(out), "--suite", "registers", "--key-dir", str(blocker / "keys"))
    assert_refused(res, "register")
    assert not out.exists()  # nothing half-made: the same --out can be used once the key directory is fixed
