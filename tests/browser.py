"""Headless Chromium for the report tests: a real browser renders what a lab hands over.

Chromium is a test dependency (`./setup.sh` and `.ci/run` install Debian's package): a missing
browser fails loudly, never skips. Each call runs in its own process group with a fresh profile and
is killed by that group's PID on timeout (Chromium forks zygote and renderer children that a plain
kill of the parent would orphan). The flags keep it from reaching for the closed network.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import select
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium_path() -> str:
    found = shutil.which("chromium") or ("/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None)
    if found is None:
        pytest.fail("chromium is missing: the report tests need a real browser; ./setup.sh (as root) or "
                    "`apt-get install chromium` installs Debian's")
    return found


def chromium(tmp: Path, *args: str, timeout: float = 90) -> str:
    """Run Chromium once with ``args`` (e.g. ``--dump-dom URL``); its stdout."""
    profile = tmp / f"chromium-profile-{time.monotonic_ns()}"
    proc = subprocess.Popen([chromium_path(), *FLAGS, f"--user-data-dir={profile}", *args], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"chromium did not finish within {timeout} s: {' '.join(args)}")
    finally:
        with contextlib.suppress(ProcessLookupError):  # helpers the browser left behind: its group, by PID
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, f"chromium exited {proc.returncode}: {err.decode(errors='replace')[-2000:]}"
    return out.decode("utf-8", errors="replace")


def dump_dom(page: Path, tmp: Path, *, virtual_time_ms: int = 0) -> str:
    """The DOM after the page (and its scripts, within the virtual time budget) ran."""
    budget = [f"--virtual-time-budget={virtual_time_ms}"] if virtual_time_ms else []
    return chromium(tmp, *budget, "--dump-dom", page.resolve().as_uri())


class Browser:
    """One headless Chromium driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``: no port,
    nothing another process can reach): a person's steps — open a page, fill a form, submit — for pages that need
    a login, which ``--dump-dom`` cannot give. Each ``tab()`` is its own browser context (own cookies), so several
    people can be logged in at once. Stopped, with its helpers, by its process group's PID."""

    def __init__(self, tmp: Path, timeout: float = 20.0) -> None:
        self.timeout = timeout
        self._next_id = 0
        self._events: list[dict] = []
        self._buffer = b""
        cmd_r, self._cmd_w = os.pipe()  # we write commands, Chromium reads them on its fd 3
        self._resp_r, resp_w = os.pipe()  # Chromium writes answers and events on its fd 4
        # Away from 3 and 4 first, so that placing one end cannot overwrite the other; posix_spawn runs no Python in
        # the child (safe beside xdist's threads), and its dup2 clears close-on-exec on 3 and 4.
        high_r, high_w = fcntl.fcntl(cmd_r, fcntl.F_DUPFD_CLOEXEC, 10), fcntl.fcntl(resp_w, fcntl.F_DUPFD_CLOEXEC, 10)
        for fd in (cmd_r, resp_w):
            os.close(fd)
        profile = tmp / f"chromium-profile-{time.monotonic_ns()}"
        try:
            self.pid = os.posix_spawn(chromium_path(), [chromium_path(), *FLAGS, f"--user-data-dir={profile}",
                                                        "--remote-debugging-pipe", "about:blank"], dict(os.environ),
                                      file_actions=[(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                                                    (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
                                                    (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0),
                                                    (os.POSIX_SPAWN_DUP2, high_r, 3),
                                                    (os.POSIX_SPAWN_DUP2, high_w, 4)], setsid=True)
        finally:
            os.close(high_r)
            os.close(high_w)

    def exited(self) -> str:
        """How the browser ended, or that it still runs."""
        pid, status = os.waitpid(self.pid, os.WNOHANG)
        return f"exit status {os.waitstatus_to_exitcode(status)}" if pid else "still running"

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._cmd_w)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)  # its group: the browser's zygote and renderers with it
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)
        os.close(self._resp_r)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def receive(self, deadline: float, during: str) -> dict:
        """The next message from Chromium (an answer or an event), waiting until ``deadline`` at most."""
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._resp_r], [], [], left)[0]:
                pytest.fail(f"chromium: nothing within {self.timeout} s during {during}")
            chunk = os.read(self._resp_r, 1 << 16)
            if not chunk:
                pytest.fail(f"chromium closed its pipe during {during} ({self.exited()})")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)

    def send(self, method: str, session: str | None = None, **params: object) -> dict:
        """A command's result (events that arrive meanwhile are kept); a protocol error fails the test."""
        self._next_id += 1
        msg: dict = {"id": self._next_id, "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        os.write(self._cmd_w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            got = self.receive(deadline, method)
            if got.get("id") == self._next_id:
                assert "error" not in got, f"{method}: {got['error']}"
                return got.get("result", {})
            if "method" in got:
                self._events.append(got)

    def tab(self) -> Tab:
        context = self.send("Target.createBrowserContext")["browserContextId"]
        target = self.send("Target.createTarget", url="about:blank", browserContextId=context)["targetId"]
        session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.send("Page.enable", session)
        self.send("Network.enable", session)
        return Tab(self, session)


class Tab:
    """One page of a :class:`Browser`, in a context of its own."""

    def __init__(self, browser: Browser, session: str) -> None:
        self.browser, self.session = browser, session

    def evaluate(self, expression: str) -> object:
        got = self.browser.send("Runtime.evaluate", self.session, expression=expression, returnByValue=True,
                                awaitPromise=True)
        assert "exceptionDetails" not in got, f"{expression}: {got['exceptionDetails']}"
        return got["result"].get("value")

    def _loaded(self, action: Callable[[], object]) -> int:
        """Run ``action`` (which navigates) and wait for the new page's load; the HTTP status of its document."""
        b = self.browser
        b._events = [e for e in b._events if e.get("sessionId") != self.session]
        action()
        deadline = time.monotonic() + b.timeout
        status, seen = 0, 0
        while True:
            while seen < len(b._events):
                e = b._events[seen]
                seen += 1
                if e.get("sessionId") != self.session:
                    continue
                if e["method"] == "Network.responseReceived" and e["params"].get("type") == "Document":
                    status = e["params"]["response"]["status"]
                if e["method"] == "Page.loadEventFired" and status:
                    return status
            got = b.receive(deadline, "a page load")
            if "method" in got:
                b._events.append(got)

    def open(self, url: str) -> int:
        """Navigate to ``url``; the HTTP status of the page (after redirects)."""
        return self._loaded(lambda: self.browser.send("Page.navigate", self.session, url=url))

    def submit(self, form: str, fields: dict[str, str]) -> int:
        """Fill the fields of the form matched by the CSS selector ``form`` as a person types them, and press its
        submit button; the HTTP status of the page that answers."""
        fill = "".join(f"f.elements[{json.dumps(k)}].value = {json.dumps(v)};" for k, v in fields.items())
        script = (f"(() => {{ const f = document.querySelector({json.dumps(form)}); {fill}"
                  "f.querySelector('button[type=submit]').click(); return true; })()")
        return self._loaded(lambda: self.evaluate(script))

    def text(self, selector: str = "body") -> str:
        return str(self.evaluate(f"(document.querySelector({json.dumps(selector)}) || {{innerText: ''}}).innerText"))

    def html(self) -> str:
        return str(self.evaluate("document.documentElement.outerHTML"))
