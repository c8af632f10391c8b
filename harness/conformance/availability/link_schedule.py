"""The rig's link-fault schedule, played on a link while the soak polls.

From a thread of its own, so a poll waiting out a timeout never delays a fault: each fault begins
at its time from the soak's start and lasts its ``for_s`` from the moment the link reports it took
(``last_transition``, the same stamp every link injector keeps), and every window is recorded as the
link reports it. The link is always restored, also when the soak is stopped early.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from harness.conformance.availability.figures import Window
from harness.reporting.outcome import exc_text
from harness.reporting.texts import Msg

JOIN_S = 10.0  # bound on waiting for the schedule's thread once stopped (a restore is one link call)


def link_for(dut: Any, which: str, kinds: set[str]) -> tuple[Any, str | None]:
    """The link the schedule acts on, or None and why this bench cannot fault it (a Msg: it is an INCONCLUSIVE
    reason on the certificate, in the run's language)."""
    if which == "main":
        link = dut.main_link
        if link is None:
            return None, Msg("this DUT's main transport is reached directly (`link: direct`), so the harness cannot "
                             "fault it: set `link: proxy` (TCP, or a simulated serial line `port: pty`; unprivileged) "
                             "or `link: netns` (TCP, root) on the DUT")
    else:
        channel = which.removeprefix("upstream_")
        if dut.upstream is None:
            return None, Msg("the schedule faults upstream {channel}, but this DUT has no upstream channels",
                             channel=channel)
        try:
            link = dut.upstream.link(channel)
        except RuntimeError as exc:
            return None, exc_text(exc)
    missing = sorted(k for k in kinds if not callable(getattr(link, k, None)))
    if missing:
        return None, Msg("the {link} link of this DUT cannot {missing}", link=type(link).__name__,
                         missing=", ".join(missing))
    return link, None


class LinkFaultSchedule:
    """Plays ``faults`` (LinkFault: at_s, kind, for_s) on ``link`` from ``t0``; ``on_edge`` gets each begin/end."""

    def __init__(self, link: Any, faults: Sequence[Any], t0: float,
                 on_edge: Callable[..., None] = lambda **_: None) -> None:
        self.link, self.faults, self.t0, self.on_edge = link, list(faults), t0, on_edge
        self.error: str | None = None
        self._windows: list[Window] = []
        self._open: tuple[str, float] | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="availability-link-faults", daemon=True)

    def __enter__(self) -> LinkFaultSchedule:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """End the schedule now: a fault in progress is restored and its window closed."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(JOIN_S)
        if self._thread.is_alive() or self._open is not None:  # the thread is stuck: restore from here
            self._restore()

    def windows(self, now: float | None = None) -> list[Window]:
        """The windows so far; one still open ends ``now`` (default: it is left out)."""
        with self._lock:
            done = list(self._windows)
            if self._open is not None and now is not None:
                done.append(Window(self._open[0], self._open[1], now))
        return done

    def _run(self) -> None:
        try:
            for n, fault in enumerate(self.faults, 1):
                if self._stop.wait(max(0.0, self.t0 + fault.at_s - time.time())):
                    return
                getattr(self.link, fault.kind)()
                begin = self.link.last_transition
                with self._lock:
                    self._open = (fault.kind, begin)
                self.on_edge(type="fault_begin", fault=n, kind=fault.kind, t=round(begin, 6))
                self._stop.wait(max(0.0, begin + fault.for_s - time.time()))
                self._restore()
        except Exception as exc:  # reported by the check (INCONCLUSIVE), never lost in a thread
            self.error = Msg("{kind}: {text}", kind=type(exc).__name__, text=exc_text(exc))
            if self._open is None:  # failed while applying: whatever half took is undone
                with contextlib.suppress(Exception):
                    self.link.restore()
            self._restore()

    def _restore(self) -> None:
        with self._lock:
            opened, self._open = self._open, None
        if opened is None:
            return
        try:
            self.link.restore()
        except Exception as exc:
            self.error = self.error or Msg("restore failed: {kind}: {text}", kind=type(exc).__name__,
                                           text=exc_text(exc))
            end = time.time()
        else:
            end = self.link.last_transition
        with self._lock:
            self._windows.append(Window(opened[0], opened[1], end))
        self.on_edge(type="fault_end", fault=len(self._windows), kind=opened[0], t=round(end, 6))
