"""The simulated meter behaves like a meter: exact tariff split, fsynced NVM, power loss is SIGKILL."""

from __future__ import annotations

import json
import socket
import time
from datetime import time as tod

from harness.config import load_profile
from harness.resources import builtin_profile
from harness.simulators.energy import ChannelCounter, EnergyMeter
from harness.simulators.timeline import Timeline
from tests.conftest import run_cli, start_sim


def test_energy_is_split_exactly_at_tariff_switches():
    tariffs = load_profile(builtin_profile("tek-sim-em4.yaml")).tariffs
    timeline = Timeline(anchor_phys=0.0, anchor_wall=time.time(), rtc_offset=6 * 3600.0)  # 06:00 local at phys 0
    meter = EnergyMeter(
        counters={"active_import": ChannelCounter(step=1.0, tariffs=[0] * 4)}, load={"active_import": 3600.0},
        tariff_at=lambda sod: tariffs.tariff_at(tod(int(sod) // 3600, int(sod) % 3600 // 60)),
        boundaries=sorted(p.time_of_day.hour * 3600 + p.time_of_day.minute * 60 for p in tariffs.schedule),
        last_phys=0.0, counted={"active_import"})
    meter.accumulate_to(5 * 3600.0, timeline)  # 06:00 → 11:00: 1 h of T4, 3 h of T1, 1 h of T2
    c = meter.counters["active_import"]
    assert c.tariffs == [10800, 3600, 0, 3600] and c.total == 18000


def _control(port: int, **req) -> dict:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(json.dumps(req).encode() + b"\n")
        return json.loads(s.makefile().readline())


def _wait(sim, deadline_s: float = 15.0) -> dict:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            return _control(sim.control_port, op="status")
        except OSError:
            time.sleep(0.05)
    raise AssertionError("simulator did not come up")


def test_state_survives_sigkill_and_clock_keeps_running(tmp_path):
    sim = start_sim(tmp_path / "state")
    try:
        _wait(sim)
        _control(sim.control_port, op="advance", seconds=3600)
        saved = json.loads((tmp_path / "state" / "nvm.json").read_text())
        rtc_before = _control(sim.control_port, op="status")["rtc_local"]
        sim.kill()  # power off: nothing gets to run
        time.sleep(0.5)
        sim2 = start_sim(tmp_path / "state")
        try:
            status = _wait(sim2)
            assert status["rtc_local"] >= rtc_before + 0.5  # battery-backed RTC ran while off
            assert json.loads((tmp_path / "state" / "nvm.json").read_text())["metering"] == saved["metering"]
        finally:
            sim2.kill()
    finally:
        sim.kill()


def test_control_channel_rejects_bad_requests(sim_meter):
    _wait(sim_meter)
    assert _control(sim_meter.control_port, op="advance", seconds=-5)["ok"] is False
    assert "unknown op" in _control(sim_meter.control_port, op="explode")["error"]


def test_list_defects_and_bad_defect():
    res = run_cli("sim", "meter", "--list-defects")
    assert res.returncode == 0 and "nvm_write_lag" in res.stdout and "KZ-95-07" in res.stdout
    res = run_cli("sim", "meter", "--state-dir", "/tmp/unused", "--tcp", "127.0.0.1:1", "--defects", "nope")
    assert res.returncode == 2 and "unknown defect" in res.stderr
