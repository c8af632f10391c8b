"""The golden AMR server on PostgreSQL (issue 15): `harness sim amr-server --db postgresql+psycopg://…` against a
real PostgreSQL server the test starts on a temporary directory (tests/postgres_server.py) — a short selection of the
amr suite passes through `harness certify`, and a SIGKILL of the AMR server loses no reading it had listed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.amr_golden import check_readings_survive_sigkill, field_of
from tests.conftest import ROOT, checks_of, run_cli, start_sim
from tests.postgres_server import PostgresServer, postgres_server

pytestmark = pytest.mark.xdist_group("amr-postgres")  # one PostgreSQL server for the module, on one worker

RIG = ROOT / "rigs" / "sim-amr.yaml"
# Checks that write to the server's storage and read it back: users (add, log in, delete), a manual reading,
# a correction proposed, confirmed, audited and undone.
CHECKS = ("KZ-62-03", "KZ-62-05", "KZ-48-01")


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    with postgres_server() as server:
        yield server


def test_certify_selection_passes_on_postgresql(postgres: PostgresServer, tmp_path: Path) -> None:
    """The built-in rig with one field meter and the server's launch command given `--db URL`."""
    url = postgres.create_database("amr_certify")
    data = yaml.safe_load(RIG.read_text(encoding="utf-8"))
    dut = data["duts"]["amr"]
    dut["profile"] = str((RIG.parent / dut["profile"]).resolve())
    dut["launch"]["command"] += ["--db", url]
    dut["field"] = {"em1": {**dut["field"]["em1"], "profile": str((RIG.parent / dut["field"]["em1"]["profile"])
                                                                  .resolve())}}
    rig = tmp_path / "sim-amr-postgres.yaml"
    rig.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    out = tmp_path / "out"
    res = run_cli("certify", str(rig), *(a for c in CHECKS for a in ("--check", c)), "--reruns", "0",
                  "--out", str(out))
    assert res.returncode == 0, res.stdout + res.stderr + postgres.log()
    checks = checks_of(out)
    assert {c: checks[c]["verdict"] for c in CHECKS} == dict.fromkeys(CHECKS, "PASS")


def test_sigkill_of_the_server_loses_no_reading_on_postgresql(postgres: PostgresServer, tmp_path: Path) -> None:
    """Every reading the API listed before a SIGKILL of the AMR server is there, unchanged, after its relaunch on the
    same database (each is committed to PostgreSQL before it is listed)."""
    url = postgres.create_database("amr_sigkill")
    sim = start_sim(tmp_path / "meter")
    try:
        check_readings_survive_sigkill(tmp_path, field_of(sim.port, sim.profile, {"m1": "active_import_total"}),
                                       "--db", url)
    finally:
        sim.kill()
    assert not (tmp_path / "s" / "amr.sqlite3").exists()  # the readings came from PostgreSQL, not a fallback
