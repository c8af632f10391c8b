"""Suite `robustness` (cl. 49; IEC 62443-3-3 SR 3.5, SR 7.1) against an AMR server's HTTP API: the golden server
passes KZ-49-01..04, its seeded `http_hangs_on_malformed` fails KZ-49-01 with an HTTP reproducer, the fuzz cases
are reproducible and carry no credential nor any request a server could accept as a change, and a web stack we did
not write (plain uvicorn serving a trivial Starlette app) survives the same campaigns."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from harness.config.robustness import Robustness
from harness.conformance.wire.campaign import Campaign
from harness.conformance.wire.http_fuzz import (
    FAMILIES,
    UNAUTHENTICATED_WRITES,
    http_cases,
    probe,
    response_length,
    successful,
)
from harness.fault_injection.ports import free_port
from harness.simulators.amr_server.defects import AMR_DEFECTS
from harness.simulators.amr_server.http_defects import HTTP_DEFECTS
from tests.conftest import ROOT, DefectBatch
from tests.defect_rigs import GOLDEN

ROBUSTNESS_CHECKS = [f"KZ-49-{n:02d}" for n in range(1, 5)]


def _small_rig(tmp_path: Path) -> Path:
    """The built-in AMR rig with one field meter and shorter campaigns (every fuzz family still several times):
    test time, not coverage."""
    doc = yaml.safe_load((ROOT / "rigs" / "sim-amr.yaml").read_text(encoding="utf-8"))
    amr = doc["duts"]["amr"]
    amr["profile"] = str(ROOT / "device_profiles" / "tek-sim-amr.yaml")
    amr["field"] = {"em1": {**amr["field"]["em1"], "profile": str(ROOT / "device_profiles" / "tek-sim-em4.yaml")}}
    doc["robustness"] = {"fuzz_cases": 60, "flood_requests": 300, "hold_s": 0.5}
    rig = tmp_path / "rig.yaml"
    rig.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return rig


# One certify run for the golden server and one server per HTTP defect (each DUT's verdicts stand alone): the
# harness's start-up, report and seal paid once. Both tests read it, so they share an xdist worker.
ROBUSTNESS_GROUP = "amr-robustness"


@pytest.fixture(scope="module")
def robustness_run(tmp_path_factory: pytest.TempPathFactory) -> DefectBatch:
    """The golden server runs the whole robustness suite; the stall on a bad request line, KZ-49-01; the
    connection slot leak, KZ-49-03."""
    tmp_path = tmp_path_factory.mktemp("amr-robustness")
    return DefectBatch(tmp_path, [AMR_DEFECTS[n] for n in HTTP_DEFECTS], _small_rig(tmp_path),
                       golden=tuple(ROBUSTNESS_CHECKS))


@pytest.mark.serial
@pytest.mark.xdist_group(ROBUSTNESS_GROUP)
def test_golden_amr_server_passes_the_robustness_suite(robustness_run: DefectBatch):
    checks, res = robustness_run.golden(), robustness_run.res
    assert {c: checks[c]["verdict"] for c in ROBUSTNESS_CHECKS} == dict.fromkeys(ROBUSTNESS_CHECKS, "PASS"), \
        res.stdout + res.stderr
    fuzz = {m["name"]: m for m in checks["KZ-49-01"]["measurements"]}
    assert fuzz["coverage: fuzz cases sent of planned"]["measured"] == 100.0
    assert fuzz["readings stored before the campaign missing afterwards"]["note"] != "0 readings checked"
    assert not list(robustness_run.out.rglob(f"reproducers/*-{GOLDEN}.*"))  # each is named CHECK-DUT
    storm = next(m for m in checks["KZ-49-03"]["measurements"] if m["name"].startswith("of 20 connections"))
    assert "declared limit 16" in storm["name"] and storm["measured"] >= 15, storm  # the profile's max_connections


@pytest.mark.serial
@pytest.mark.xdist_group(ROBUSTNESS_GROUP)
def test_each_http_defect_fails_its_check_and_keeps_an_http_reproducer(robustness_run: DefectBatch):
    """A server per defect: the stall on a bad request line fails KZ-49-01 on its answer time, the connection slot
    leak fails KZ-49-03 on the new connections after the storm."""
    batch = robustness_run
    hang = batch.run(AMR_DEFECTS["http_hangs_on_malformed"]).record
    slowest = next(m for m in hang["measurements"] if m["name"] == "essential function: slowest answer")
    assert slowest["passed"] is False and slowest["measured"] >= 2.0, slowest
    leak = batch.run(AMR_DEFECTS["http_connection_limit_leak"]).record
    after = next(m for m in leak["measurements"] if m["name"] == "new connections served after the storm's were closed")
    assert after["measured"] == 0, after
    out = batch.part("http_hangs_on_malformed")[0]
    sidecar = json.loads(next(out.rglob("reproducers/KZ-49-01-http_hangs_on_malformed.json")).read_text())
    assert sidecar["protocol"] == "http" and sidecar["pcap"] == "KZ-49-01-http_hangs_on_malformed.pcap"
    assert any(c["family"] == "request_line" for c in sidecar["cases"]), sidecar["cases"]


def test_http_cases_are_reproducible_and_carry_no_change_a_server_could_accept():
    """Same seed, same bytes; every family drawn; no credential anywhere; no body to /login; a state-changing
    method only towards the endpoints the contract guards with a bearer token (so it must be refused: 401)."""
    cases = http_cases(62, 400, "/api/v1", "127.0.0.1:8080")
    assert [c.frame for c in cases] == [c.frame for c in http_cases(62, 400, "/api/v1", "127.0.0.1:8080")]
    assert {c.family for c in cases} == {name for name, _ in FAMILIES}
    guarded = {f"{m} /api/v1{p}" for m, p in UNAUTHENTICATED_WRITES}
    for c in cases:
        assert b"authorization" not in c.frame.lower() and b"cookie" not in c.frame.lower(), c
        assert b"/login" not in c.frame, c
        line = c.frame.split(b"\r\n", 1)[0].decode("latin-1")
        method = line.split(" ", 1)[0]
        if method in ("POST", "PUT", "DELETE", "PATCH"):
            target = " ".join(line.split(" ")[:2])  # a truncated case may end inside it
            assert any(g.startswith(target) for g in guarded), c
        assert len(c.frame) < 65_000  # one IP packet in the reproducer's pcap


def test_http_response_framing():
    assert response_length(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok") == 40
    chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"
    assert response_length(chunked) == len(chunked) and response_length(chunked[:-2]) is None
    assert response_length(b"HTTP/1.1 204 No Content\r\n\r\n") == 27
    assert successful(b"HTTP/1.1 200 OK\r\n") and not successful(b"HTTP/1.1 503 x\r\n") and not successful(None)


TRIVIAL_APP = '''
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route


async def health(request):
    return JSONResponse({"status": "ok"})


async def meters(request):
    return JSONResponse([{"id": "m1"}])


app = Starlette(routes=[Route("/api/v1/health", health), Route("/api/v1/meters", meters),
                        Route("/api/v1/users", meters, methods=["GET", "POST"])])
'''


@pytest.mark.serial
def test_plain_uvicorn_is_not_failed_by_the_campaigns(tmp_path):
    """A stack we did not write: uvicorn (h11) serving a trivial Starlette app, attacked by the same campaigns
    (fuzz, request storm, connection storm, half-open) while a client reads every 50 ms. A sound server answers
    every read within 1 s throughout and serves new connections after each campaign. Debatable answers are not
    judged: RFC 9112 lets a server answer a malformed message with 400 *or* close the connection (§2.2, §3, §5,
    §7.1), and one without a declared connection limit may serve every storm connection."""
    import httpx

    (tmp_path / "trivial_app.py").write_text(TRIVIAL_APP, encoding="utf-8")
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "uvicorn", "trivial_app:app", "--app-dir", str(tmp_path),
                               "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"])
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=4.0) as client:
            deadline = time.monotonic() + 15
            while True:
                try:
                    client.get("/api/v1/health")
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline, "uvicorn did not start"
                    time.sleep(0.1)
            latencies: list[float] = []
            failures: list[str] = []
            stop = threading.Event()

            def monitor() -> None:
                while not stop.is_set():
                    t0 = time.perf_counter()
                    try:
                        ok = client.get("/api/v1/meters").status_code == 200
                    except httpx.HTTPError as exc:
                        ok, _ = False, failures.append(type(exc).__name__)
                    latencies.append(time.perf_counter() - t0)
                    if not ok:
                        failures.append("not 200")
                    stop.wait(0.05)

            settings = Robustness(fuzz_cases=200, flood_requests=300, max_duration_s=20)
            request = probe("/api/v1", f"127.0.0.1:{port}")
            thread = threading.Thread(target=monitor, daemon=True)
            thread.start()
            try:
                campaign = Campaign("127.0.0.1", port, settings, response_length)
                outcomes = campaign.fuzz(http_cases(62, settings.fuzz_cases, "/api/v1", f"127.0.0.1:{port}"),
                                         lambda: False, 1.0)
                assert len(outcomes) == settings.fuzz_cases and all(o.refused is None for o in outcomes)
                assert campaign.fresh_connections_served(request, successful, 3, 1.0) == 3
                flood = Campaign("127.0.0.1", port, settings, response_length).flood(
                    lambda n: request, successful, settings.flood_requests, 4, 1.0, lambda: False)
                assert flood.answered == flood.sent == settings.flood_requests
                storm_campaign = Campaign("127.0.0.1", port, settings, response_length)
                storm = storm_campaign.storm(16, request, successful, 1.0)
                assert storm.served == 16
                storm_campaign.release(storm)
                held = storm_campaign.half_open(4, request, 1.0)
                time.sleep(1.0)
                storm_campaign.release(held)
                assert storm_campaign.fresh_connections_served(request, successful, 3, 1.0) == 3
            finally:
                stop.set()
                thread.join(timeout=6)
        assert not failures, failures
        assert latencies and max(latencies) < 1.0, max(latencies)
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=5)


def test_the_hanging_defect_is_only_on_malformed_request_lines():
    from harness.simulators.amr_server.http_defects import REQUEST_LINE, protocol

    assert protocol(set()) == "h11"
    assert REQUEST_LINE.match(b"GET /api/v1/health HTTP/1.1\r\n")
    assert not REQUEST_LINE.match(b"G\x00ET / HTTP/1.1\r\n") and not REQUEST_LINE.match(b"GET /\r\n")


def test_the_answer_bound_is_the_amr_profiles_response_time():
    from types import SimpleNamespace

    from harness.config import load_profile
    from harness.conformance.wire.modbus_targets import response_time_s

    profile = load_profile(ROOT / "device_profiles" / "tek-sim-amr.yaml")
    timing = SimpleNamespace(request_timeout_s=1.0)
    assert response_time_s(SimpleNamespace(profile=profile, timing=timing)) == 1.0  # none declared: the rig's
    timings = profile.amr.timings.model_copy(update={"response_time_s": 2.5})
    declared = profile.model_copy(update={"amr": profile.amr.model_copy(update={"timings": timings})})
    assert response_time_s(SimpleNamespace(profile=declared, timing=timing)) == 2.5
