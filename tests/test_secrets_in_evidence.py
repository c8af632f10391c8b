"""No secrets in what is handed over (issue 13, item 3): after a certification of the built-in meter rig
(write-protection password) and of the controller rig (three accounts, OPC UA client and server keys),
no rig secret and no private key is in the run folder or in its bundle; a simulator gets its secrets
from a file or its environment, never its command line; `--out` into a folder with foreign files is
refused."""

from __future__ import annotations

import gzip
import stat
from pathlib import Path

import pytest
from conftest import CONTROLLER_GOLDEN_GROUP, METER_GOLDEN_GROUP, ROOT, run_cli

from harness.config import load_rig
from harness.redaction import Redactor, rig_secrets
from harness.resources import builtin_rig

NEEDLES_ALWAYS = [b"PRIVATE KEY"]


def secrets_of(rig: Path) -> list[bytes]:
    found = [s.encode() for s in rig_secrets(load_rig(rig).rig)]
    assert found, f"{rig} has no secrets to look for"
    return found


def grep_r(folder: Path, needles: list[bytes]) -> list[str]:
    """`grep -r` for each needle: every (file, needle) where it occurs."""
    hits = []
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            hits += [f"{path.relative_to(folder)}: {n.decode()}" for n in needles if n in data]
    return hits


def bundle_of(out: Path, bundle: Path) -> Path:
    res = run_cli("bundle", str(out), "-o", str(bundle))
    assert res.returncode == 0, res.stderr
    return bundle


def certify_and_bundle(rig: Path, out: Path, *extra: str) -> Path:
    res = run_cli("certify", str(rig), "--out", str(out), "--suite", "access_control", *extra)
    assert res.returncode == 0, res.stdout + res.stderr
    return bundle_of(out, out.with_name(out.name + ".tar.gz"))


# The golden certifications of the built-in rigs (conftest), every suite: what a lab hands over after a real run.
GOLDEN_RUNS = [pytest.param("meter_golden_run", builtin_rig(), marks=pytest.mark.xdist_group(METER_GOLDEN_GROUP),
                            id="meter"),
               pytest.param("controller_golden_run", ROOT / "rigs" / "sim-controller.yaml",
                            marks=pytest.mark.xdist_group(CONTROLLER_GOLDEN_GROUP), id="controller")]


@pytest.mark.slow
@pytest.mark.parametrize(("golden", "rig"), GOLDEN_RUNS)
def test_no_rig_secret_and_no_private_key_in_the_run_folder_or_its_bundle(golden, rig, request, tmp_path):
    run = request.getfixturevalue(golden)
    run.passed()
    needles = secrets_of(rig) + NEEDLES_ALWAYS
    out = run.out
    bundle = bundle_of(out, tmp_path / "run.tar.gz")
    assert grep_r(out, needles) == []
    assert not [n for n in needles if n in gzip.decompress(bundle.read_bytes())]
    # the operator can still tell which credential was used: the rig copy carries each one's SHA-256
    copy = next((out / "config").glob("rig-*.yaml")).read_text()
    for secret in secrets_of(rig):
        assert Redactor([secret.decode()]).text(secret.decode()) in copy
    # the DUT's log shows how it was launched, without the secrets
    log = next((out / "logs").glob("*.log")).read_text()
    assert "--- start" in log and "--credentials-file" in log
    assert run_cli("verify", str(out)).returncode == 0


@pytest.mark.slow
@pytest.mark.xdist_group(CONTROLLER_GOLDEN_GROUP)
def test_the_controller_runs_client_certificates_stay_but_no_key_nor_its_private_folder(controller_golden_run):
    out = controller_golden_run.out
    controller_golden_run.passed()
    assert (out / "pki" / "harness-client.der").is_file()  # which identity the DUT trusted: evidence
    assert not list(out.rglob("*key*.pem"))
    launched = (out / "logs" / "plc.log").read_text().split("--credentials-file ", 1)[1].split()[0]
    private = Path(launched).parent
    assert private.name.startswith("tek-harness-private-") and not private.is_relative_to(out)
    assert not private.exists()  # the secrets and keys went with the bench


def test_a_vendor_emulator_gets_its_password_from_the_environment_and_its_log_is_redacted(tmp_path):
    """A vendor's emulator takes the password from an environment variable (launch.env "{password:unlock}")
    and prints it: the DUT's log holds the marker, not the password."""
    rig_text = builtin_rig().read_text()
    fake = ('"{python}", "-c", "import os, runpy, sys; print(\'vendor emulator, password\', '
            'os.environ[\'VENDOR_PW\'], flush=True); sys.argv = [\'harness\'] + sys.argv[1:]; '
            'runpy.run_module(\'harness\', run_name=\'__main__\')", "sim",')
    rig_text = rig_text.replace('"{python}", "-m", "harness", "sim",', fake)
    rig_text = rig_text.replace("      ready_timeout_s: 20\n",
                                "      ready_timeout_s: 20\n      env: {VENDOR_PW: \"{password:unlock}\"}\n")
    assert "VENDOR_PW" in rig_text and "runpy" in rig_text
    rig = tmp_path / "vendor-rig.yaml"
    rig.write_text(rig_text.replace("../device_profiles/", str(ROOT / "device_profiles") + "/"))
    out = tmp_path / "run"
    certify_and_bundle(rig, out)
    log = (out / "logs" / "meter.log").read_text()
    marker = Redactor(["20250094"]).text("20250094")
    assert f"vendor emulator, password {marker}" in log
    assert grep_r(out, secrets_of(rig)) == []


def test_a_password_on_the_launch_command_line_is_refused(tmp_path):
    rig_text = builtin_rig().read_text().replace('"--credentials-file", "{credentials_file}"',
                                                 '"--unlock-password", "20250094"')
    rig = tmp_path / "argv-rig.yaml"
    rig.write_text(rig_text.replace("../device_profiles/", str(ROOT / "device_profiles") + "/"))
    res = run_cli("check", str(rig))
    assert res.returncode == 2 and "launch.command holds the password of credentials.unlock" in res.stderr


def test_out_into_a_folder_holding_foreign_files_is_refused(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "id_ed25519").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nsecret\n-----END OPENSSH PRIVATE KEY-----\n")
    res = run_cli("certify", "--out", str(out), "--suite", "registers")
    assert res.returncode == 2 and "not an empty folder" in res.stderr
    assert sorted(p.name for p in out.iterdir()) == ["id_ed25519"]


def test_the_credentials_file_is_private_and_outside_the_run(tmp_path):
    from harness.bench import Bench

    bench = Bench(load_rig(builtin_rig()), tmp_path / "out")
    try:
        path = Path(bench.runtimes["meter"]._placeholders()["credentials_file"])
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert not path.is_relative_to(tmp_path / "out")
        assert b"20250094" in path.read_bytes()
    finally:
        bench.close()
    assert not path.exists() and not bench.private_dir.exists()


def test_the_running_simulators_command_line_holds_no_secret(tmp_path):
    """What `ps` shows of a launched DUT: its credentials file, not the password (which still opens it)."""
    from harness.bench import Bench

    bench = Bench(load_rig(builtin_rig()), tmp_path / "out")
    try:
        runtime = bench.dut("meter")
        assert runtime.process is not None and runtime.process.pid is not None
        cmdline = Path(f"/proc/{runtime.process.pid}/cmdline").read_bytes()
        assert b"--credentials-file" in cmdline and b"20250094" not in cmdline
        runtime.device.unlock()  # the simulator took the lab's password from the file
    finally:
        bench.close()
