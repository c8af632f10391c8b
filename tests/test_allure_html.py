"""The single-file Allure report: real results in, one offline HTML file out, rendered by a real browser.

The tests that need the Allure CLI skip only when it is absent AND HARNESS_REQUIRE_ALLURE is unset (CI sets
it after .ci/install-allure.sh, so a broken install fails there instead of silently skipping). The browser
test needs Debian's chromium (tests/browser.py: missing, it fails).
Everything else (finding the CLI, the error paths, sanitising) runs with stand-in executables and needs
neither Node nor a browser.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from browser import dump_dom

from harness.reporting import allure_html
from harness.reporting.allure_html import (
    INSTALL_COMMAND,
    AllureFailed,
    AllureUnavailable,
    build_allure_html,
    external_loads,
    find_allure,
    strip_external_references,
)

PASS_TITLE = "voltage_within_limits"
FAIL_NAME = "test_frequency_out_of_range"
CYRILLIC_TITLE = "Напряжение в пределах нормы"

SAMPLE_TESTS = f'''
import allure


@allure.epic("Chapter 9. Metering")
@allure.feature("cl. 9.1")
@allure.title("{PASS_TITLE}")
def test_voltage():
    allure.attach('{{"voltage_V": 230.1}}', name="measurements", attachment_type=allure.attachment_type.JSON)
    assert 230.1 > 220


@allure.epic("Chapter 9. Metering")
@allure.feature("cl. 9.2")
@allure.severity(allure.severity_level.CRITICAL)
def {FAIL_NAME}():
    allure.attach("f=51.0 Hz", name="log", attachment_type=allure.attachment_type.TEXT)
    assert 51.0 == 50.0


@allure.title("{CYRILLIC_TITLE}")
def test_cyrillic():
    pass
'''


# ---------------------------------------------------------------- helpers


def _write_executable(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def _fake_results(tmp_path: Path) -> Path:
    """A results directory that passes build_allure_html's own checks (the CLI under test is a stand-in)."""
    res = tmp_path / "fake-results"
    res.mkdir()
    (res / "0-result.json").write_text('{"name": "t", "status": "passed"}')
    return res


def _require_allure() -> list[str]:
    cmd = find_allure()
    if cmd is None:
        if os.environ.get("HARNESS_REQUIRE_ALLURE"):
            pytest.fail(f"HARNESS_REQUIRE_ALLURE is set but no Allure CLI was found; run `{INSTALL_COMMAND}`")
        pytest.skip(f"Allure CLI not installed (bash .ci/install-allure.sh, i.e. `{INSTALL_COMMAND}`)")
    return cmd


def _report_payloads(html: str) -> str:
    """The report's data, decoded: the single-file report stores each JSON file as d("name","<base64>")."""
    parts = []
    for m in re.finditer(r'd\("([^"]+)","([A-Za-z0-9+/=]*)"\)', html):
        parts.append(base64.b64decode(m.group(2)).decode("utf-8", errors="replace"))
    return "\n".join(parts)


# ---------------------------------------------------------------- real Allure: results → one HTML file


# Its module-scoped fixtures are made once per worker: one group keeps the module on one worker (--dist loadgroup).
pytestmark = pytest.mark.xdist_group("allure-html")


@pytest.fixture(scope="module")
def allure_results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real allure-results from a throwaway pytest run (one pass, one fail, labels, attachments)."""
    work = tmp_path_factory.mktemp("allure-sample")
    (work / "pytest.ini").write_text("[pytest]\n")  # keep the project's pyproject/conftest out of it
    (work / "test_sample.py").write_text(SAMPLE_TESTS, encoding="utf-8")
    results = work / "allure-results"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:harness",
         f"--alluredir={results}", "test_sample.py"],
        cwd=work, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stdout + proc.stderr  # exactly the one deliberate failure
    assert "1 failed, 2 passed" in proc.stdout, proc.stdout
    assert len(list(results.glob("*-result.json"))) == 3
    assert list(results.glob("*-attachment.*"))
    return results


@pytest.fixture(scope="module")
def report(allure_results: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    _require_allure()
    out_dir = tmp_path_factory.mktemp("allure-report")
    dest = out_dir / "allure-report.html"
    dest.write_text("stale report from an earlier run")  # must be replaced whole
    t0 = time.monotonic()
    got = build_allure_html(allure_results, dest, title="tek-harness sample")
    elapsed = time.monotonic() - t0
    assert got == dest
    assert elapsed < 60, f"report took {elapsed:.1f} s"
    return dest


def test_report_is_one_self_contained_file(report: Path) -> None:
    assert sorted(p.name for p in report.parent.iterdir()) == [report.name]  # no .part left behind
    size = report.stat().st_size
    assert 200_000 < size < 30_000_000, size
    html = report.read_text(encoding="utf-8")
    assert html.lstrip().lower().startswith("<!doctype html")
    assert "<title> tek-harness sample </title>" in html
    data = _report_payloads(html)
    for name in (PASS_TITLE, FAIL_NAME, CYRILLIC_TITLE, "cl. 9.1", "measurements"):
        assert name in data, name


def test_report_loads_nothing_from_other_hosts(report: Path) -> None:
    html = report.read_text(encoding="utf-8")
    low = html.lower()
    assert "googletagmanager" not in low
    assert "gtag(" not in low
    assert not re.search(r"<script[^>]*\ssrc\s*=\s*[\"']?\s*(https?:)?//", html, re.IGNORECASE)
    assert not re.search(r"<link[^>]*\shref\s*=\s*[\"']?\s*(https?:)?//", html, re.IGNORECASE)
    assert external_loads(html) == []
    assert 'http-equiv="Content-Security-Policy"' in html
    # Whatever http(s) strings remain in the HTML itself are XML namespace URIs of inline SVG, not loads.
    outside_data_uris = re.sub(r"data:[a-z/+.-]+;base64,[A-Za-z0-9+/=]+", "", html)
    assert set(re.findall(r"https?://[^\s\"'<>]+", outside_data_uris)) <= {"http://www.w3.org/2000/svg"}


def test_report_renders_from_file_url_in_chromium(report: Path, tmp_path: Path) -> None:
    dom = dump_dom(report, tmp_path, virtual_time_ms=10000)
    visible = re.sub(r"<script\b.*?</script>", "", dom, flags=re.DOTALL | re.IGNORECASE)  # rendered text only
    assert PASS_TITLE in visible
    assert FAIL_NAME in visible
    assert CYRILLIC_TITLE in visible


def test_report_handles_glob_characters_in_the_path(allure_results: Path, tmp_path: Path) -> None:
    """Allure 3 reads result paths as globs; a run directory named like this must still work."""
    _require_allure()
    odd = tmp_path / "run [1] {a,b} (x)*" / "allure-results"
    shutil.copytree(allure_results, odd)
    dest = build_allure_html(odd, tmp_path / "out" / "r.html")
    assert PASS_TITLE in _report_payloads(dest.read_text(encoding="utf-8"))


# ---------------------------------------------------------------- finding the CLI; error paths (no Node needed)


@pytest.fixture
def no_allure_anywhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An environment without any Allure: no HARNESS_ALLURE, no local prefix, a PATH without it."""
    monkeypatch.delenv("HARNESS_ALLURE", raising=False)
    monkeypatch.setattr(allure_html, "_local_candidates", lambda: [])
    empty_bin = tmp_path / "empty-bin"
    empty_bin.mkdir()
    monkeypatch.setenv("PATH", str(empty_bin))
    monkeypatch.chdir(tmp_path)


def test_no_cli_raises_with_install_instructions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """HARNESS_ALLURE names a missing file and PATH has no allure: unavailable, with the way to fix it."""
    monkeypatch.setenv("HARNESS_ALLURE", str(tmp_path / "no-such-allure"))
    empty_bin = tmp_path / "empty-bin"
    empty_bin.mkdir()
    monkeypatch.setenv("PATH", str(empty_bin))
    monkeypatch.chdir(tmp_path)
    assert find_allure() is None  # an explicit HARNESS_ALLURE is never second-guessed
    with pytest.raises(AllureUnavailable) as exc:
        build_allure_html(_fake_results(tmp_path), tmp_path / "r.html")
    msg = str(exc.value)
    assert INSTALL_COMMAND in msg
    assert f"allure@{allure_html.ALLURE_VERSION}" in msg
    assert "npm install" in msg
    assert "HARNESS_ALLURE" in msg
    assert not (tmp_path / "r.html").exists()


def test_nothing_installed_anywhere(no_allure_anywhere: None, tmp_path: Path) -> None:
    assert find_allure() is None
    with pytest.raises(AllureUnavailable, match="npm install"):
        build_allure_html(_fake_results(tmp_path), tmp_path / "r.html")


def test_lookup_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """HARNESS_ALLURE, then the project-local .allure/ prefix (cwd), then PATH."""
    monkeypatch.delenv("HARNESS_ALLURE", raising=False)
    on_path = _write_executable(tmp_path / "bin" / "allure", "#!/bin/sh\n")
    monkeypatch.setenv("PATH", str(on_path.parent))
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.chdir(project)
    monkeypatch.setattr(allure_html, "_local_candidates", lambda: [Path.cwd() / ".allure/node_modules/.bin/allure"])
    assert find_allure() == [str(on_path)]
    local = _write_executable(project / ".allure" / "node_modules" / ".bin" / "allure", "#!/bin/sh\n")
    assert find_allure() == [str(local)]
    explicit = _write_executable(tmp_path / "elsewhere" / "my-allure", "#!/bin/sh\n")
    monkeypatch.setenv("HARNESS_ALLURE", str(explicit))
    assert find_allure() == [str(explicit)]


def test_default_local_prefix_includes_cwd_and_source_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    candidates = allure_html._local_candidates()
    assert tmp_path / ".allure" / "node_modules" / ".bin" / "allure" in candidates
    source_root = Path(allure_html.__file__).resolve().parents[2]
    assert source_root / ".allure" / "node_modules" / ".bin" / "allure" in candidates


def _fake_allure(tmp_path: Path, generate_body: str, version: str = "3.18.0") -> Path:
    """A stand-in CLI: answers --version, runs ``generate_body`` for anything else."""
    return _write_executable(
        tmp_path / "fake" / "allure",
        f'#!/bin/sh\nif [ "$1" = "--version" ]; then echo {version}; exit 0; fi\n{generate_body}\n',
    )


def test_cli_failure_raises_runtime_error_with_stderr(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _fake_allure(tmp_path, 'echo "boom: cannot read results" >&2; exit 3')
    monkeypatch.setenv("HARNESS_ALLURE", str(fake))
    with pytest.raises(RuntimeError, match=r"(?s)exit 3.*boom: cannot read results"):
        build_allure_html(_fake_results(tmp_path), tmp_path / "r.html")
    assert not (tmp_path / "r.html").exists()


def test_cli_environment_disables_analytics(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env_dump = tmp_path / "env.txt"
    fake = _fake_allure(tmp_path, f'env > "{env_dump}"; exit 1')
    monkeypatch.setenv("HARNESS_ALLURE", str(fake))
    with pytest.raises(AllureFailed):
        build_allure_html(_fake_results(tmp_path), tmp_path / "r.html")
    env = dict(line.split("=", 1) for line in env_dump.read_text().splitlines() if "=" in line)
    assert env["ALLURE_NO_ANALYTICS"] == "true"
    assert env["DO_NOT_TRACK"] == "1"
    assert env["HOME"] != os.environ.get("HOME")  # crash logs land in the scratch dir, not the user's home


def test_allure2_is_rejected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _fake_allure(tmp_path, "exit 0", version="2.30.0")
    monkeypatch.setenv("HARNESS_ALLURE", str(fake))
    with pytest.raises(AllureUnavailable, match=r"Allure 2\.30\.0.*needs Allure 3"):
        build_allure_html(_fake_results(tmp_path), tmp_path / "r.html")


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state == "Z"


def test_hung_cli_is_killed_with_its_children(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pid_file = tmp_path / "child.pid"
    fake = _fake_allure(tmp_path, f'sleep 300 & echo $! > "{pid_file}"; echo "started" >&2; sleep 300')
    monkeypatch.setenv("HARNESS_ALLURE", str(fake))
    t0 = time.monotonic()
    with pytest.raises(AllureFailed, match="did not finish within 1 s"):
        build_allure_html(_fake_results(tmp_path), tmp_path / "r.html", timeout_s=1)
    assert time.monotonic() - t0 < 30
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while not _gone(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _gone(child), f"background child {child} of the hung CLI survived"


def test_missing_or_empty_results_dir(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        build_allure_html(tmp_path / "nope", tmp_path / "r.html")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match=r"no \*-result\.json"):
        build_allure_html(empty, tmp_path / "r.html")


# ---------------------------------------------------------------- sanitising (pure string work)

GTM_PAGE = """<!DOCTYPE html>
<html><head>
    <meta charset="utf-8">
    <title>r</title>
    <link rel="icon" href="data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg'/%3E">
    <link rel="stylesheet" href="https://fonts.example.com/font.css">
    <link rel="preconnect" href="//cdn.example.com">
</head><body>
    <noscript><iframe src="https://www.googletagmanager.com/ns.html?id=GTM-X"></iframe></noscript>
    <script src="data:text/javascript;base64,Y29uc29sZS5sb2coMSk="></script>
    <script async src="https://www.googletagmanager.com/gtag/js?id=G-LNDJ3J7WT0"></script>
    <script>
        window.dataLayer = window.dataLayer || [];
        function gtag(){dataLayer.push(arguments);}
        gtag('js', new Date());
    </script>
    <img src="https://tracker.example.com/pixel.gif">
    <a href="https://allurereport.org">Powered by Allure</a>
    <script>window.allure = {};</script>
</body></html>
"""


def test_strip_external_references() -> None:
    assert len(external_loads(GTM_PAGE)) >= 5
    clean = strip_external_references(GTM_PAGE)
    assert external_loads(clean) == []
    for gone in ("googletagmanager", "gtag", "fonts.example.com", "cdn.example.com", "pixel.gif", "<noscript"):
        assert gone not in clean, gone
    for kept in ("data:text/javascript;base64,Y29uc29sZS5sb2coMSk=", "window.allure = {};",
                 'href="https://allurereport.org"', "data:image/svg+xml"):  # fmt: skip
        assert kept in clean, kept
    csp = clean.index("Content-Security-Policy")
    assert clean.index('<meta charset="utf-8">') < csp < clean.index("<script")
    assert "default-src 'none'" in clean
    assert strip_external_references(clean) == clean  # idempotent: one CSP, nothing more to strip
