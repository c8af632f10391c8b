"""The AMR server lane (issue 15): the golden server passes suite `amr` on the built-in rig, each seeded defect
FAILs its check on its clause, and bad input (a contract-violating answer, a wrong login, no server) is a
verdict with its reason, never a traceback."""

from __future__ import annotations

import http.server
import itertools
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from harness.config import ConfigError, load_rig
from harness.conformance.amr.export_rows import exported_meters, parse_rfc4180
from harness.devices.amr.api import AmrAccessDenied, AmrContractViolation
from harness.devices.amr.rest import RestAmrServer
from harness.fault_injection.ports import free_port
from harness.fault_injection.time_control import SimulatorTime
from harness.simulators.amr_server.defects import AMR_DEFECTS
from tests.amr_golden import SIGKILL_ACCOUNT, check_readings_survive_sigkill, field_of, golden_server
from tests.conftest import ROOT, DefectBatch, _batch_for, checks_of, run_cli, verdicts_of
from tests.russian_text import english_left
from tests.test_amr_reports import TOGETHER as REPORT_DEFECTS

RIG = ROOT / "rigs" / "sim-amr.yaml"
AMR_CLAUSES = ("18", "19", "21", "48", "62", "77", "67", "73", "58", "59", "72", "79", "93")
AVAILABILITY = {"KZ-67-01", "KZ-73-01"}
DOCUMENTARY = {"KZ-50-01", "KZ-58-01", "KZ-59-01", "KZ-72-01", "KZ-79-01", "KZ-87-01", "KZ-93-01"}


@pytest.mark.slow  # suites amr, availability, documentation on the built-in rig: a server and four meters, ~30 s
def test_golden_server_passes_every_amr_check(tmp_path: Path) -> None:
    """One certify run on the built-in rig (the only test that needs it, so no shared fixture): suite amr, the soak
    of the server's API (cl. 67, 73, link cut on its proxy) and the documentary clauses as they apply to software."""
    golden = tmp_path / "out"
    res = run_cli("certify", str(RIG), "--suite", "amr", "--suite", "availability", "--suite", "documentation",
                  "--out", str(golden), "--lang", "ru")
    assert res.returncode == 0, res.stdout + res.stderr
    checks = checks_of(golden)
    amr = {"KZ-18-01", "KZ-48-01", "KZ-62-01", "KZ-62-02", "KZ-62-03", "KZ-62-04", "KZ-62-05", "KZ-62-06",
           "KZ-62-07", "KZ-62-08", "KZ-77-01"}
    assert set(checks) == amr | AVAILABILITY | DOCUMENTARY
    # cl. 50, 87 (state registry, verification) are a measuring instrument's: N/A for software, with the reason
    assert {i: r["verdict"] for i, r in checks.items() if r["verdict"] != "PASS"} == {
        "KZ-50-01": "N/A", "KZ-87-01": "N/A"}, {i: r.get("reason") for i, r in checks.items()}
    assert "not a measuring instrument" in checks["KZ-50-01"]["reason"]
    # every measured check has its seeded defect (cl. 49's: tests/test_amr_robustness.py)
    assert {d.expect for d in AMR_DEFECTS.values() if d.clause != "49"} == amr | {"KZ-67-01"}
    soak = checks["KZ-67-01"]["measurements"]
    assert "`meters` request of the API, answered within the declared 1 s" in soak[1]["note"], soak[1]
    assert checks["KZ-73-01"]["measurements"][0]["measured"] == 1  # the rig's cut of the API link was played
    clauses = verdicts_of(golden)["duts"]["amr"]["clauses"]
    assert {c: clauses[c]["verdict"] for c in AMR_CLAUSES} == dict.fromkeys(AMR_CLAUSES, "PASS")
    assert {c: clauses[c]["verdict"] for c in ("50", "87")} == {"50": "N/A", "87": "N/A"}
    # The ground truth is the field's: every meter of the rig (3 electricity, 1 heat) was judged.
    readings = [m["name"] for m in checks["KZ-62-02"]["measurements"] if "equal to the meter's register" in m["name"]]
    assert sorted(n.split(":")[0] for n in readings) == ["em1", "em2", "em3", "hm1"]
    # issue 19: certified in Russian, no English word is left in the certificate but names (russian_text.py)
    assert not english_left(golden), english_left(golden)


def _small_rig(tmp_path: Path, meters: tuple[str, ...]) -> Path:
    """The built-in rig with a smaller field: what a defect's check needs, less to start (each meter is a process)."""
    data = yaml.safe_load(RIG.read_text(encoding="utf-8"))
    dut = data["duts"]["amr"]
    dut["profile"] = str((RIG.parent / dut["profile"]).resolve())
    dut["field"] = {name: {**meter, "profile": str((RIG.parent / meter["profile"]).resolve())}
                    for name, meter in dut["field"].items() if name in meters}
    # A defect's shortfall FAILs KZ-67-01 however short the soak (only a PASS needs 100+ polls): 3 s, no link cut,
    # so the API needs no link proxy either (one relay less per request).
    data["availability"] = {"duration_s": 3, "interval_s": data["availability"]["interval_s"]}
    del dut["link"]
    path = tmp_path / "sim-amr-small.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


AMR_DEFECTS_GROUP = "amr-defects"
# Seeded one per server in one certify run (tests/defect_rigs.py), but for those run elsewhere:
BATCHED = [name for name, d in AMR_DEFECTS.items() if name not in REPORT_DEFECTS  # together: tests/test_amr_reports.py
           and d.clause != "49"]  # on a smaller campaign: tests/test_amr_robustness.py


def _field_for(defect: str, dut: dict) -> None:
    """Each defect's server gets the field its check needs, less to start (each meter is a process): KZ-18-01's
    isolation a subscriber's own meter and another one (em1, em2), every other check one meter (em1). The bench
    names each meter after its server (DEFECT.em1: its own log, state directory and ports)."""
    if AMR_DEFECTS[defect].expect != "KZ-18-01":
        dut["field"] = {"em1": dut["field"]["em1"]}


@pytest.fixture(scope="session")
def amr_defects(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> DefectBatch:
    """The seeded defects below in the certify runs _batch_for makes (two at once for 14 defects) instead of one
    run each: a server per defect, each running only its check, ~1.4 s of harness start-up, a report and a seal
    paid once per run instead of once per defect."""
    rig = _small_rig(tmp_path_factory.mktemp("amr-rig"), ("em1", "em2"))
    return _batch_for(request, tmp_path_factory, AMR_DEFECTS, rig, _field_for)


@pytest.mark.slow  # each run of the batch takes its checks one after the other (KZ-62-02's walk a simulated day)
@pytest.mark.xdist_group(AMR_DEFECTS_GROUP)
@pytest.mark.parametrize("defect", BATCHED)
def test_defect_fails_its_check(amr_defects: DefectBatch, defect: str) -> None:
    run = amr_defects.run(AMR_DEFECTS[defect])  # exit 1, its check FAILed on its clause, its progress line
    assert sorted(run.checks) == [AMR_DEFECTS[defect].expect]  # its server ran only that check


def test_real_server_without_time_control_is_checked_in_wall_time(tmp_path: Path) -> None:
    """A server with no control channel (as a real one): `dut.time` is wall time, bounded by max_wall_wait_s; with
    the short polling interval a lab sets, the automatic and manual reading checks pass by waiting for real."""
    data = yaml.safe_load(_small_rig(tmp_path, ("em1",)).read_text(encoding="utf-8"))
    dut = data["duts"]["amr"]
    del dut["control"]
    command = dut["launch"]["command"]
    del command[command.index("--control"):command.index("--control") + 2]
    command[command.index("--poll-interval") + 1], command[command.index("--inactive-after") + 1] = "0.5", "2"
    profile = yaml.safe_load(Path(dut["profile"]).read_text(encoding="utf-8"))
    profile["amr"]["timings"].update(poll_interval_s=0.5, inactive_detection_s=3.0, fault_detection_s=2.0)
    dut["profile"] = str(tmp_path / "wall-amr.yaml")
    Path(dut["profile"]).write_text(yaml.safe_dump(profile, sort_keys=False), encoding="utf-8")
    rig = tmp_path / "wall.yaml"
    rig.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    out = tmp_path / "out"
    res = run_cli("certify", str(rig), "--check", "KZ-62-02", "--check", "KZ-62-03", "--out", str(out))
    checks = checks_of(out)
    assert {i: r["verdict"] for i, r in checks.items()} == {"KZ-62-02": "PASS", "KZ-62-03": "PASS"}, res.stdout
    count = next(m for m in checks["KZ-62-02"]["measurements"] if m["name"].startswith("em1: automatic readings"))
    assert count["name"] == "em1: automatic readings in 2.5 s"  # a few intervals of real time, not a simulated day


# ---- bad input ----------------------------------------------------------------------------------------------------
def test_unreachable_server_fails_with_the_reason(tmp_path: Path) -> None:
    """A rig naming a server nobody runs: the check FAILs naming the request that found nobody (as a meter that
    does not answer does), exit 1, no traceback."""
    data = yaml.safe_load(RIG.read_text(encoding="utf-8"))
    dut = data["duts"]["amr"]
    dut["profile"] = str((RIG.parent / dut["profile"]).resolve())
    del dut["launch"], dut["field"], dut["control"], dut["link"]  # reached directly, as a lab's server would be
    dut["transport"]["tcp"]["port"] = free_port("127.0.0.1")  # nothing listens there
    rig = tmp_path / "nobody.yaml"
    rig.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    res = run_cli("certify", str(rig), "--check", "KZ-62-05", "--reruns", "0", "--out", str(tmp_path / "out"))
    assert res.returncode == 1 and "Traceback" not in res.stdout + res.stderr, res.stdout + res.stderr
    record = checks_of(tmp_path / "out")["KZ-62-05"]
    assert record["verdict"] == "FAIL" and "GET /health: ConnectError" in record["reason"], record


class _Lying(http.server.BaseHTTPRequestHandler):
    """A server that logs anyone in and answers its meter list outside the contract."""

    def do_POST(self) -> None:
        self._answer(200, {"token": "t"} if self.path.endswith("/login") else {})

    def do_GET(self) -> None:
        self._answer(200, {"meters": [{"id": "m1", "status": "dead-ish", "last_reading_time": None}]})

    def _answer(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def lying_server() -> Iterator[RestAmrServer]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Lying)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    profile = load_rig(RIG).profiles["amr"]
    timing = load_rig(RIG).rig.timing
    server = RestAmrServer("liar", profile, None, timing, None, {"host": "127.0.0.1", "port": httpd.server_port})
    try:
        yield server
    finally:
        server.close()
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def test_contract_violation_names_what_is_wrong(lying_server: RestAmrServer) -> None:
    session = lying_server.login("anyone", "anything")
    with pytest.raises(AmrContractViolation, match="status 'dead-ish' is neither active nor inactive"):
        session.meters()


def test_golden_server_refuses_a_wrong_login_and_keeps_its_readings_through_sigkill(tmp_path: Path,
                                                                                    sim_meter) -> None:
    """By hand, on one simulated meter: a wrong password is a 401 named as such; every reading the API showed
    before a SIGKILL is there, unchanged, after the relaunch (committed before it is listed)."""
    field = field_of(sim_meter.port, sim_meter.profile, {"m1": "active_import_total"})

    def wrong_password_refused(server: RestAmrServer) -> None:
        with pytest.raises(AmrAccessDenied, match="refused"):
            server.login(SIGKILL_ACCOUNT["admin"]["user"], "wrong-one")

    check_readings_survive_sigkill(tmp_path, field, on_first=wrong_password_refused)


def test_golden_server_polls_at_simulated_times_and_keeps_its_time_through_sigkill(tmp_path: Path, sim_meter) -> None:
    """Time advanced through the control channel: every poll due in the span is read at its own time (an interval
    apart, none missed or doubled), and after a SIGKILL the relaunched server goes on from the time it had reached."""
    field = field_of(sim_meter.port, sim_meter.profile, {"m1": "active_import_total"})
    control = free_port("127.0.0.1")
    clock = SimulatorTime("127.0.0.1", control)
    rig = load_rig(RIG)
    # polls a minute apart: none falls in the few seconds of wall time the test takes, all in the advanced hour
    with golden_server(tmp_path, field, SIGKILL_ACCOUNT, "--control", str(control), "--poll-interval", "60") as base:
        server = RestAmrServer("golden", rig.profiles["amr"], None, rig.rig.timing, None,
                               {"host": "127.0.0.1", "port": int(base.rsplit(":", 1)[1])})
        try:
            session = server.login(SIGKILL_ACCOUNT["admin"]["user"], SIGKILL_ACCOUNT["admin"]["password"])
            known = len(session.readings("m1"))
            reached = clock.request(op="advance", seconds=600)["physical"]  # 10 polls
            stamps = [r.reading_time.timestamp() for r in session.readings("m1")[known:] if r.source == "auto"]
        finally:
            server.close()
    assert len(stamps) == 10 and reached - 600.5 <= stamps[0] and stamps[-1] <= reached, stamps
    assert all(59.5 < b - a < 60.5 for a, b in itertools.pairwise(stamps)), stamps  # each at its own poll's time
    with golden_server(tmp_path, field, SIGKILL_ACCOUNT, "--control", str(control)):
        assert clock.request(op="status")["physical"] >= reached  # killed above (by PID), relaunched on its state


# ---- configuration and parsing ------------------------------------------------------------------------------------
def test_field_meter_of_the_wrong_kind_is_a_config_error(tmp_path: Path) -> None:
    data = yaml.safe_load(RIG.read_text(encoding="utf-8"))
    dut = data["duts"]["amr"]
    dut["profile"] = str((RIG.parent / dut["profile"]).resolve())
    dut["field"] = {"srv": {**dut["field"]["em1"], "profile": dut["profile"]}}
    rig = tmp_path / "rig.yaml"
    rig.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    with pytest.raises(ConfigError, match="kind amr_server; expected electricity_meter or heat_meter"):
        load_rig(rig)


def test_list_defects_names_each_with_its_check() -> None:
    res = run_cli("sim", "amr-server", "--list-defects")
    assert res.returncode == 0
    for defect in AMR_DEFECTS.values():
        assert f"{defect.name}" in res.stdout and defect.expect in res.stdout


def test_csv_parser_holds_to_rfc4180() -> None:
    good = b'meter_id,quantity,value,unit,reading_time\r\nm1,e,1.5,Wh,2026-01-01T00:00:00+00:00\r\n' \
           b'"m,2",e,2,Wh,2026-01-01T00:00:01+00:00\r\n'
    rows, problems = parse_rfc4180(good)
    assert problems == [] and [r["meter_id"] for r in rows] == ["m1", "m,2"]
    assert exported_meters(good) == {"m1", "m,2"}
    _, problems = parse_rfc4180(good.replace(b"\r\n", b"\n"))
    assert any("CRLF" in p for p in problems)
    _, problems = parse_rfc4180(b"meter_id,value\r\nm1,1\r\n")
    assert any("lacks column(s) quantity, unit, reading_time" in p for p in problems)
