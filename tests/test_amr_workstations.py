"""The golden AMR server's workstation pages (issue 15), as people use them: in headless Chromium, each role logs in
through the login form, sees its own functions, uses them, and is refused the others' pages; the subscriber's chart
is there and holds only its own meter's data."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from harness.simulators.amr_server.chart import consumption_chart
from tests.amr_golden import field_of, golden_server, until
from tests.browser import Browser, Tab
from tests.conftest import start_sim

pytestmark = pytest.mark.xdist_group("amr-workstations")  # one server for the module's tests, on one worker

ACCOUNTS = {"admin": {"user": "ws-admin", "password": "admin-pass-62"},
            "operator": {"user": "ws-operator", "password": "operator-pass-62"}}
SUBSCRIBER = {"user": "ws-subscriber", "password": "subscriber-pass-18"}
OTHERS = {"admin": ("operator", "subscriber"), "operator": ("admin", "subscriber"),
          "subscriber": ("admin", "operator")}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Two field meters on one simulated meter: m1 its import register (the subscriber's), m2 its export register.
    One server for the module (its tests add nothing the other reads)."""
    tmp = tmp_path_factory.mktemp("amr-workstations")
    sim = start_sim(tmp / "meter")
    try:
        field = field_of(sim.port, sim.profile, {"m1": "active_import_total", "m2": "active_export_total"})
        with golden_server(tmp, field, ACCOUNTS) as base:
            yield base
    finally:
        sim.kill()


def login(tab: Tab, base: str, user: str, password: str, role: str) -> None:
    assert tab.open(f"{base}/ui/") == 200 and tab.evaluate("location.pathname") == "/ui/login"
    assert tab.submit("main#login form", {"user": user, "password": password}) == 200
    assert tab.evaluate("location.pathname") == f"/ui/{role}"
    assert tab.evaluate(f"!!document.querySelector('main#{role}-workstation')")


def refused_the_others(tab: Tab, base: str, role: str) -> None:
    for other in OTHERS[role]:
        assert tab.open(f"{base}/ui/{other}") == 403, f"{role} opened the {other} workstation"
        assert tab.evaluate("!!document.querySelector('main#refused')"), tab.text()
        assert f"this is the {other} workstation" in tab.text("#reason")


def api(base: str, account: dict[str, str]) -> httpx.Client:
    token = httpx.post(f"{base}/api/v1/login", json=account, timeout=5).json()["token"]
    return httpx.Client(base_url=f"{base}/api/v1", headers={"Authorization": f"Bearer {token}"}, timeout=5)


def test_each_role_gets_its_workstation_and_is_refused_the_others(server: str, tmp_path: Path) -> None:
    base = server
    with Browser(tmp_path) as browser, api(base, ACCOUNTS["admin"]) as admin_api:
        # Administrator: the server's health and each meter's diagnostics, users and their rights; adds a subscriber.
        admin = browser.tab()
        login(admin, base, ACCOUNTS["admin"]["user"], ACCOUNTS["admin"]["password"], "admin")
        assert admin.text("#health-status") == "ok" and admin.text("#health-database") == "sqlite"
        assert admin.evaluate("[...document.querySelectorAll('#meter-diagnostics tr[data-meter]')]"
                              ".map(r => r.dataset.meter)") == ["m1", "m2"]
        assert "ws-operator" in admin.text("#users")
        assert admin.submit("form#add-user", {"name": SUBSCRIBER["user"], "role": "subscriber",
                                              "password": SUBSCRIBER["password"], "meters": "m1"}) == 200
        assert f"user {SUBSCRIBER['user']} added" in admin.text(".note")
        assert admin.text(f"tr[data-user='{SUBSCRIBER['user']}']").split("\t")[:3] == [
            SUBSCRIBER["user"], "subscriber", "m1"]
        refused_the_others(admin, base, "admin")

        # Operator: meters with status and communication, a manual reading, a correction that waits for confirmation.
        operator = browser.tab()
        login(operator, base, ACCOUNTS["operator"]["user"], ACCOUNTS["operator"]["password"], "operator")
        assert operator.evaluate("[...document.querySelectorAll('#meters tr[data-meter]')].map(r => r.dataset.meter)"
                                 ) == ["m1", "m2"]
        manual_before = sum(r["source"] == "manual" for r in admin_api.get("/meters/m1/readings").json()["readings"])
        assert operator.submit("tr[data-meter='m1'] form", {}) == 200
        assert "reading of m1 requested" in operator.text(".note")
        until(lambda: sum(r["source"] == "manual" for r in admin_api.get("/meters/m1/readings").json()["readings"])
              > manual_before, 5)
        assert operator.open(f"{base}/ui/operator") == 200
        # (a reading of m2, which the subscriber below does not see: its chart stays the register's own)
        reading = operator.evaluate("document.querySelector('#readings tr[data-meter=m2]').dataset.reading")
        stored = admin_api.get(f"/readings/{reading}").json()
        assert operator.submit("form#propose-correction", {"reading_id": reading, "new_value": "1.5",
                                                           "reason": "workstation test"}) == 200
        assert "proposed" in operator.text(".note"), operator.text()
        assert admin_api.get(f"/readings/{reading}").json()["value"] == stored["value"]  # unconfirmed: unchanged
        assert "workstation test" in operator.text("#corrections")
        # ... which the administrator confirms on its own page: now it changes the value and keeps the original.
        assert admin.open(f"{base}/ui/admin") == 200
        assert admin.submit("#pending-corrections tr[data-correction] form", {}) == 200
        assert "confirmed" in admin.text(".note"), admin.text()
        corrected = admin_api.get(f"/readings/{reading}").json()
        assert (corrected["value"], corrected["original_value"]) == (1.5, stored["value"])
        assert not operator.evaluate("!!document.querySelector('form#add-user')")
        refused_the_others(operator, base, "operator")

        # Subscriber: its own meter only, and its consumption as a chart drawn from that meter's readings.
        subscriber = browser.tab()
        login(subscriber, base, SUBSCRIBER["user"], SUBSCRIBER["password"], "subscriber")
        assert subscriber.evaluate("[...document.querySelectorAll('[data-meter]')].map(e => e.dataset.meter)"
                                   ) == ["m1", "m1", "m1"]  # its table row, its chart's section and its svg
        assert "m2" not in subscriber.text()
        chart = json.loads(str(subscriber.evaluate(
            "(() => { const s = document.querySelector('svg.consumption-chart[data-meter=m1]');"
            "return JSON.stringify({total: +s.dataset.total, first: s.dataset.first, last: s.dataset.last,"
            "bars: [...s.querySelectorAll('rect.bar')].map(b => +b.dataset.consumption)}); })()")))
        readings = [r for r in admin_api.get("/meters/m1/readings").json()["readings"]
                    if chart["first"] <= r["reading_time"] <= chart["last"]]
        assert len(chart["bars"]) == 24 and chart["total"] > 0
        assert chart["total"] == pytest.approx(readings[-1]["value"] - readings[0]["value"])
        assert sum(chart["bars"]) == pytest.approx(chart["total"])
        refused_the_others(subscriber, base, "subscriber")

        # Logging out ends the login: the workstation sends the browser back to the login form.
        assert admin.open(f"{base}/ui/admin") == 200
        assert admin.submit("header form", {}) == 200 and admin.evaluate("location.pathname") == "/ui/login"
        assert admin.open(f"{base}/ui/admin") == 200 and admin.evaluate("location.pathname") == "/ui/login"


def test_a_workstation_form_is_refused_without_its_token_or_to_another_role(server: str) -> None:
    """No other site can post to a workstation (its forms carry a token of the login), and a role's login cannot post
    to another role's forms — checked at the HTTP level, where a browser's page would not even offer them."""
    with httpx.Client(base_url=server, timeout=5) as operator:
        r = operator.post("/ui/login", data={"user": ACCOUNTS["operator"]["user"],
                                             "password": ACCOUNTS["operator"]["password"]})
        assert r.status_code == 303
        assert operator.post("/ui/admin/users", data={"name": "x", "role": "admin", "password": "p"}).status_code == 403
        assert operator.post("/ui/operator/meters/m1/read", data={}).status_code == 403  # no form token
        assert httpx.post(f"{server}/ui/operator/meters/m1/read", data={}, timeout=5).status_code == 401
    with httpx.Client(base_url=server, timeout=5) as nobody:
        r = nobody.post("/ui/login", data={"user": ACCOUNTS["operator"]["user"], "password": "wrong"})
        assert r.status_code == 401 and "wrong user or password" in r.text


def test_consumption_chart_counts_register_rises_per_bucket() -> None:
    """A fall of the register (a reset, a corrected reading) is no negative consumption; each rise lands in the
    bucket of the later reading; fewer than two readings draw no bars."""
    readings = [("2026-01-01T00:00:00+00:00", 10.0), ("2026-01-01T00:30:00+00:00", 12.0),
                ("2026-01-01T01:00:00+00:00", 1.0), ("2026-01-01T02:00:00+00:00", 5.0)]
    chart = consumption_chart("m1", "kWh", readings, buckets=4)
    assert [b.consumption for b in chart.bars] == [0.0, 2.0, 0.0, 4.0]
    assert (chart.total, chart.peak, chart.first, chart.last) == (6.0, 4.0, readings[0][0], readings[-1][0])
    assert chart.bars[3].height == pytest.approx(chart.height - 2 * chart.pad) and chart.bars[0].height == 0
    assert consumption_chart("m1", "kWh", readings[:1]).bars == []
