"""The signed certificate and its evidence: certificate.json's full clause matrix, the manifest and
signature (`harness verify` finds any changed byte and names it), `harness bundle`, `harness report`
and `harness keys`."""

from __future__ import annotations

import json
import shutil
import stat
import tarfile
from pathlib import Path

import pytest
from browser import dump_dom
from conftest import REGISTERS_RUN_GROUP, allure_env, run_cli

from harness.reporting.clauses import CLAUSES

# The sealed run is conftest's, shared with test_custody.py on one worker.
pytestmark = pytest.mark.xdist_group(REGISTERS_RUN_GROUP)


@pytest.fixture(scope="module")
def sealed_run(sealed_registers_run: Path) -> Path:
    return sealed_registers_run


@pytest.fixture
def run_copy(sealed_run, tmp_path) -> Path:
    dest = tmp_path / "copy"
    shutil.copytree(sealed_run, dest)
    return dest


def test_certificate_lists_every_clause_once_with_a_reason_for_each_non_pass(sealed_run):
    cert = json.loads((sealed_run / "certificate.json").read_text())
    assert cert["format"] == "tek-harness-certificate/1"
    assert cert["certification_grade"] is False  # --suite deselected the other suites
    rows = cert["duts"]["meter"]["clauses"]
    numbers = [r["clause"] for r in rows]
    assert numbers == list(CLAUSES)
    chapters_9_15 = [n for n in numbers if n.isdigit() and 49 <= int(n) <= 97]
    assert chapters_9_15 == [str(n) for n in range(49, 98)]  # every clause of ch. 9–15 exactly once
    by = {r["clause"]: r for r in rows}
    assert by["95"]["verdict"] == "PASS" and by["95"]["text_ru"].startswith("Приборы учета")
    assert by["97"]["verdict"] == "NOT TESTED" and "not run" in by["97"]["reason"]
    assert all(r["reason"] for r in rows if r["verdict"] != "PASS")
    assert by["52"]["kind"] == "out of scope" and by["52"]["reason"].startswith("out of scope")
    assert sum(cert["counts"].values()) == len(rows)
    assert cert["duts"]["meter"]["serial_number"]
    assert (sealed_run / cert["rig"]["file"]).exists()


def test_the_real_certificate_renders_in_a_browser(sealed_run, tmp_path):
    dom = dump_dom(sealed_run / "certificate.html", tmp_path)
    assert 'id="clause-matrix-meter"' in dom and 'id="clause-95"' in dom
    row = dom[dom.index('id="clause-95"'):]
    row = row[:row.index("</tr>")]
    assert "PASS" in row and "KZ-95-01" in row and "Приборы учета" in row
    assert "NOT TESTED" in dom and "out of scope" in dom
    assert "allure-report.html" in dom  # the Allure report is linked when the CLI was there


def test_verify_accepts_the_untouched_run(sealed_run):
    res = run_cli("verify", str(sealed_run))
    assert res.returncode == 0, res.stderr
    assert "OK" in res.stdout and "evidence files match" in res.stdout


@pytest.mark.parametrize("victim", ["transcript.jsonl", "checks.jsonl", "config/rig-sim-meter.yaml",
                                    "certificate.html"])
def test_one_changed_byte_of_evidence_fails_verify(run_copy, victim):
    path = run_copy / victim
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    res = run_cli("verify", str(run_copy))
    assert res.returncode == 1
    assert f"{victim}: changed after signing" in res.stderr


def test_a_changed_certificate_fails_verify(run_copy):
    path = run_copy / "certificate.json"
    path.write_text(path.read_text().replace('"FAIL": 0', '"FAIL": 00', 1).replace('"PASS"', '"PASS" ', 1))
    res = run_cli("verify", str(run_copy))
    assert res.returncode == 1
    assert "certificate.json: does not match the digest that was signed" in res.stderr
    assert "signature:" in res.stderr


def test_added_and_removed_files_and_a_forged_manifest_fail_verify(run_copy):
    (run_copy / "extra.txt").write_text("slipped in later")
    (run_copy / "verdicts.json").unlink()
    res = run_cli("verify", str(run_copy))
    assert res.returncode == 1
    assert "extra.txt: added after signing" in res.stderr
    assert "verdicts.json: missing" in res.stderr
    # Re-writing the manifest to match does not help: the signature pins the manifest.
    manifest = json.loads((run_copy / "manifest.json").read_text())
    manifest["files"].pop("verdicts.json")
    (run_copy / "manifest.json").write_text(json.dumps(manifest))
    res = run_cli("verify", str(run_copy))
    assert res.returncode == 1 and "manifest.json: does not match the digest that was signed" in res.stderr


def test_verify_trust_names_a_foreign_signer(sealed_run, tmp_path):
    other = tmp_path / "other-key"
    assert run_cli("keys", "init", "--name", "Another Lab", "--key-dir", str(other)).returncode == 0
    res = run_cli("verify", str(sealed_run), "--trust", str(other / "lab-cert.pem"))
    assert res.returncode == 1 and "not by the trusted certificate" in res.stderr


def test_keys_init_makes_a_private_key_and_refuses_to_overwrite(tmp_path):
    key_dir = tmp_path / "k"
    res = run_cli("keys", "init", "--name", "Test Lab", "--key-dir", str(key_dir))
    assert res.returncode == 0 and "CN=Test Lab" in res.stdout
    assert stat.S_IMODE((key_dir / "lab-key.pem").stat().st_mode) == 0o600
    assert run_cli("keys", "init", "--name", "X", "--key-dir", str(key_dir)).returncode == 2
    assert "CN=Test Lab" in run_cli("keys", "show", "--key-dir", str(key_dir)).stdout


def test_bundle_holds_a_run_that_verifies_after_unpacking(run_copy, tmp_path):
    res = run_cli("bundle", str(run_copy), "-o", str(tmp_path / "b.tar.gz"))
    assert res.returncode == 0, res.stderr
    with tarfile.open(tmp_path / "b.tar.gz") as tar:
        names = tar.getnames()
        tar.extractall(tmp_path / "unpacked", filter="data")
    for needed in ("certificate.json", "certificate.sig.json", "manifest.json", "certificate.html", "checks.jsonl"):
        assert f"copy/{needed}" in names
    assert any(n.startswith("copy/config/profile-") for n in names)
    assert run_cli("verify", str(tmp_path / "unpacked" / "copy")).returncode == 0


def test_bundle_and_report_refuse_a_broken_seal(run_copy):
    (run_copy / "checks.jsonl").write_text("")
    res = run_cli("bundle", str(run_copy))
    assert res.returncode == 1 and "checks.jsonl: changed" in res.stderr
    res = run_cli("report", str(run_copy))
    assert res.returncode == 2 and "not re-signed" in res.stderr and "checks.jsonl: changed" in res.stderr


def test_report_on_an_intact_run_rewrites_the_html_and_still_verifies(run_copy):
    before = (run_copy / "certificate.sig.json").read_text()
    res = run_cli("report", str(run_copy), env=allure_env())
    assert res.returncode == 0, res.stderr
    assert (run_copy / "certificate.html").exists()
    assert run_cli("verify", str(run_copy)).returncode == 0
    assert json.loads(before)["subject"] == json.loads((run_copy / "certificate.sig.json").read_text())["subject"]


@pytest.mark.parametrize("entry", ["symlink", "fifo", "empty directory", "symlink over a file"])
def test_verify_names_entries_that_are_not_regular_files(run_copy, entry):
    import os

    if entry == "symlink":
        (run_copy / "logs" / "extra").symlink_to("/etc/hostname")
        expected = "logs/extra: a symlink, not a regular file"
    elif entry == "fifo":
        os.mkfifo(run_copy / "pipe")
        expected = "pipe: a FIFO, not a regular file"
    elif entry == "empty directory":
        (run_copy / "state" / "nothing").mkdir()
        expected = "state/nothing: an empty directory"
    else:  # same bytes, but the seal cannot pin what a link points to later
        target = run_copy.parent / "verdicts-elsewhere.json"
        (run_copy / "verdicts.json").rename(target)
        (run_copy / "verdicts.json").symlink_to(target)
        expected = "verdicts.json: a symlink, not a regular file"
    res = run_cli("verify", str(run_copy), timeout=60)  # a FIFO must not hang it either
    assert res.returncode == 1 and "NOT VALID" in res.stderr, res.stdout + res.stderr
    assert expected in res.stderr


@pytest.mark.parametrize(("name", "content"), [
    ("manifest.json", "[]"), ("manifest.json", '{"files": []}'), ("manifest.json", '{"files": {"checks.jsonl": 1}}'),
    ("manifest.json", "\udcff not json"), ("certificate.sig.json", "[]"), ("certificate.sig.json", '{"payload": 5}'),
    ("certificate.sig.json", '{"payload": "", "signer": "ed25519-x509", "certificate_pem": 5, "signature": []}'),
    ("certificate.sig.json", '"just a string"')])
def test_verify_reports_seal_files_of_the_wrong_shape_without_a_traceback(run_copy, name, content):
    (run_copy / name).write_bytes(content.encode("utf-8", "surrogateescape"))
    res = run_cli("verify", str(run_copy))
    assert res.returncode == 1 and "NOT VALID" in res.stderr, res.stdout + res.stderr
    assert "Traceback" not in res.stderr


@pytest.mark.parametrize("trust", ["not a certificate", "directory",
                                   "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"])
def test_verify_trust_that_is_not_a_pem_certificate_is_a_usage_error(sealed_run, tmp_path, trust):
    path = tmp_path / "trust.pem"
    if trust == "directory":
        path.mkdir()
    else:
        path.write_text(trust)
    res = run_cli("verify", str(sealed_run), "--trust", str(path))
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert str(path) in res.stderr and len(res.stderr.strip().splitlines()) == 1
