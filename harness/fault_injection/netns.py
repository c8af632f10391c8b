"""Kernel link faults: a DUT in its own network namespace behind a veth pair (root only).

Why: the proxy (``link_proxy``) breaks TCP connections; some faults only exist below TCP —
packet loss with retransmission, latency a TCP stack must ride out, a link that goes silent
while every socket stays open. Launch the DUT with ``command(argv)`` and reach it at
``ns_address``; the faults act on the veth pair, so the DUT sees them exactly like a bad cable.

Only what this module creates is ever touched: one namespace, one veth pair (the peer end is
created directly inside the namespace), and the root qdiscs of those two interfaces.

``cut`` is a silent drop (a ``pfifo limit 0`` root qdisc on both ends), not link-down: a cut
cable behind a switch, a fibre or a radio hop is silent, and failover logic must detect it by
its own timeouts. Link-down instead hands both stacks an immediate local error, and — worse —
it deletes the connected route, so traffic to ``ns_address`` falls through to the host's default
route and leaves the machine. The drop qdisc keeps the route, needs no sch_netem, and a
connection that was open across the cut resumes (TCP retransmits) after ``restore``.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import functools
import ipaddress
import logging
import os
import random
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from harness.fault_injection.record import FaultLog

log = logging.getLogger(__name__)

POOL = ipaddress.ip_network("10.213.0.0/16")  # cut into /30s, one per link
RUN_TIMEOUT_S = 10.0
_LOCK = Path("/run" if os.path.isdir("/run") else tempfile.gettempdir()) / "tek-harness-netns.lock"
_ABSENT = ("Cannot find device", "No such file or directory", "handle of zero", "Invalid handle")


class NetnsError(RuntimeError):
    """An ``ip``/``tc`` command failed; the message carries the command and its stderr."""


def _run(argv: list[str], *, check: bool = True, timeout: float = RUN_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise NetnsError(f"`{' '.join(argv)}` did not finish within {timeout:g} s") from None
    except OSError as exc:
        raise NetnsError(f"`{' '.join(argv)}` could not run: {exc.strerror}") from None
    if check and done.returncode != 0:
        raise NetnsError(f"`{' '.join(argv)}` failed (exit {done.returncode}): {done.stderr.strip()}")
    return done


def _quiet(argv: list[str]) -> None:
    """Undo a step; "already gone" is success, anything else is logged — cleanup never raises."""
    try:
        done = _run(argv, check=False)
    except NetnsError as exc:
        log.warning("cleanup: %s", exc)
        return
    if done.returncode != 0 and not any(a in done.stderr for a in _ABSENT):
        log.warning("cleanup: `%s` failed: %s", " ".join(argv), done.stderr.strip())


def _probe_namespace(*steps: list[str]) -> str | None:
    """Run ``steps`` (``{ns}`` filled in) in a throw-away namespace; the first failure's stderr."""
    ns = f"tek-probe-{secrets.token_hex(4)}"
    try:
        _run(["ip", "netns", "add", ns])
    except NetnsError as exc:
        return f"cannot create a network namespace: {exc}"
    try:
        for step in steps:
            done = _run([arg.format(ns=ns) for arg in step], check=False)
            if done.returncode != 0:
                return f"`{' '.join(step).format(ns=ns)}`: {done.stderr.strip()}"
        return None
    except NetnsError as exc:
        return str(exc)
    finally:
        _quiet(["ip", "netns", "del", ns])


@functools.cache
def netns_available() -> str | None:
    """None when namespaces, veth pairs and tc can be used here; otherwise why not."""
    if sys.platform != "linux":
        return "network namespaces need Linux"
    if os.geteuid() != 0:
        return f"network namespaces need root (running as uid {os.geteuid()})"
    for tool in ("ip", "tc"):
        if shutil.which(tool) is None:
            return f"`{tool}` not found (Debian package iproute2)"
    reason = _probe_namespace(
        ["ip", "-n", "{ns}", "link", "add", "tkprobe0", "type", "veth", "peer", "tkprobe1"],
        ["tc", "-n", "{ns}", "qdisc", "replace", "dev", "tkprobe0", "root", "pfifo", "limit", "0"])
    return f"network namespace probe failed: {reason}" if reason else None


@functools.cache
def netem_available() -> str | None:
    """None when ``tc … netem`` works (``NetnsLink.netem``); otherwise why not."""
    reason = netns_available()
    if reason is None:
        reason = _probe_namespace(["tc", "-n", "{ns}", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"])
        if reason:
            reason = f"tc netem unavailable ({reason}); the kernel needs sch_netem (CONFIG_NET_SCH_NETEM)"
    return reason


def _in_use() -> list[ipaddress.IPv4Network]:
    """Every IPv4 prefix the root namespace already has an address or a route for."""
    nets = []
    for line in _run(["ip", "-4", "-o", "addr", "show"]).stdout.splitlines():
        words = line.split()
        if "inet" in words:
            nets.append(ipaddress.ip_interface(words[words.index("inet") + 1]).network)
    for line in _run(["ip", "-4", "route", "show", "table", "all"]).stdout.splitlines():
        words = line.split()
        dest = words[1] if words and words[0] in ("local", "broadcast", "unreachable", "prohibit", "blackhole",
                                                   "throw", "unicast", "multicast", "anycast") else words[0]
        with contextlib.suppress(ValueError, IndexError):
            nets.append(ipaddress.ip_network(dest, strict=False))
    return [n for n in nets if isinstance(n, ipaddress.IPv4Network)]


class NetnsLink:
    """A namespace for one DUT, joined to the root namespace by a veth pair that can be impaired."""

    def __init__(self, *, name_hint: str, faults: FaultLog | None = None, dut: str = "") -> None:
        self.name_hint = name_hint
        self.faults = faults if faults is not None else FaultLog(None)
        self.dut = dut
        token = secrets.token_hex(4)  # 2^32 names: parallel runs do not collide
        hint = re.sub(r"[^a-z0-9]+", "-", name_hint.lower()).strip("-")[:16] or "link"
        self.namespace = f"tek-{hint}-{token}"
        self.host_if, self.ns_if = f"tk{token}h", f"tk{token}n"  # IFNAMSIZ: at most 15 characters
        self.host_address = self.ns_address = ""
        self._made_ns = self._made_link = self._live = False
        self._event: int | None = None
        self._lock = threading.RLock()
        self.last_transition = 0.0  # time.time() just after the last cut/impairment/restore took effect

    # ---- lifecycle ----------------------------------------------------------------------------
    def create(self) -> NetnsLink:
        """Namespace, veth pair, a free /30 from 10.213.0.0/16, links up. Undone if any step fails."""
        with self._lock:
            if self._live:
                raise NetnsError(f"{self.namespace} already created")
            self._live = True
            atexit.register(self.close)  # a crashing test must not leave namespaces behind
            try:
                _run(["ip", "netns", "add", self.namespace])
                self._made_ns = True
                _run(["ip", "link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if,
                      "netns", self.namespace])
                self._made_link = True
                _run(["ip", "link", "set", "dev", self.host_if, "alias", f"tek-harness {self.namespace}"])
                self._assign_addresses()
                _run(["ip", "link", "set", "dev", self.host_if, "up"])
                self._ns(["link", "set", "dev", self.ns_if, "up"])
                self._ns(["link", "set", "dev", "lo", "up"])
            except BaseException:
                self.close()
                raise
        return self

    def _assign_addresses(self) -> None:
        """Pick a /30 nobody uses and claim it, under a host-wide lock so parallel runs cannot race."""
        with _LOCK.open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            taken = _in_use()
            subnets = random.Random(secrets.randbits(64))
            for _ in range(256):
                net = ipaddress.ip_network(f"{POOL[subnets.randrange(POOL.num_addresses // 4) * 4]}/30")
                if not any(net.overlaps(t) for t in taken):
                    break
            else:
                raise NetnsError(f"no free /30 left in {POOL} after 256 tries")
            host, peer = list(net.hosts())
            _run(["ip", "addr", "add", f"{host}/30", "dev", self.host_if])
            self.host_address = str(host)
        self._ns(["addr", "add", f"{peer}/30", "dev", self.ns_if])
        self.ns_address = str(peer)

    def close(self) -> None:
        """Undo everything this instance made, in reverse; idempotent, never raises.

        Stop the DUT and close the host's sockets to ``ns_address`` first: once the veth is gone the
        host would route what they still send (retransmissions, FIN) by its default route."""
        with self._lock:
            if not self._live:
                return
            self._live = False
            atexit.unregister(self.close)
            self._end(reason="close")
            if self._made_link:
                _quiet(["tc", "qdisc", "del", "dev", self.host_if, "root"])
                _quiet(["tc", "-n", self.namespace, "qdisc", "del", "dev", self.ns_if, "root"])
                _quiet(["ip", "link", "del", "dev", self.host_if])  # takes the peer end with it
                self._made_link = False
            if self._made_ns:
                _quiet(["ip", "netns", "del", self.namespace])
                self._made_ns = False

    def __enter__(self) -> NetnsLink:
        return self if self._live else self.create()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def command(self, argv: list[str]) -> list[str]:
        """The command line that runs ``argv`` inside the namespace (``ip netns exec`` execs it: same PID)."""
        if not self._live:
            raise NetnsError(f"{self.namespace} is not created")
        return ["ip", "netns", "exec", self.namespace, *argv]

    # ---- faults -------------------------------------------------------------------------------
    def netem(self, *, loss_pct: float = 0, delay_ms: float = 0, jitter_ms: float = 0, corrupt_pct: float = 0) -> None:
        """Impair both directions: each veth end gets the same netem, so ``delay_ms`` is one-way
        (the round trip grows by twice that) and ``loss_pct`` applies to each direction."""
        for label, value, top in (("loss_pct", loss_pct, 100), ("corrupt_pct", corrupt_pct, 100),
                                  ("delay_ms", delay_ms, None), ("jitter_ms", jitter_ms, None)):
            if value < 0 or (top is not None and value > top):
                raise ValueError(f"{label} must be within 0..{top or 'inf'}, got {value}")
        args = ["delay", f"{delay_ms:g}ms"] + ([f"{jitter_ms:g}ms"] if jitter_ms else [])
        if loss_pct:
            args += ["loss", f"{loss_pct:g}%"]
        if corrupt_pct:
            args += ["corrupt", f"{corrupt_pct:g}%"]
        self._impair("netem", ["netem", *args], loss_pct=loss_pct, delay_ms=delay_ms, jitter_ms=jitter_ms,
                     corrupt_pct=corrupt_pct)

    def cut(self) -> None:
        """Silence the link both ways (see the module docstring for why not link-down)."""
        self._impair("cut", ["pfifo", "limit", "0"], method="pfifo limit 0 on both veth ends (silent drop)")

    def restore(self) -> None:
        """A clean link again: both root qdiscs deleted, both ends up; the fault's record ends."""
        with self._lock:
            self._require()
            self._clear_qdiscs()
            _run(["ip", "link", "set", "dev", self.host_if, "up"])
            self._ns(["link", "set", "dev", self.ns_if, "up"])
            self.last_transition = time.time()
            self._end(reason="restore")

    def _impair(self, what: str, qdisc: list[str], **params: Any) -> None:
        with self._lock:
            self._require()
            try:
                _run(["tc", "qdisc", "replace", "dev", self.host_if, "root", *qdisc])
                _run(["tc", "-n", self.namespace, "qdisc", "replace", "dev", self.ns_if, "root", *qdisc])
            except NetnsError as exc:
                with contextlib.suppress(NetnsError):  # the original error is the one to report
                    self._clear_qdiscs()  # never half-applied: one direction impaired and the other not
                self._end(reason=f"failed to apply {what}")
                if "netem" in qdisc and "unknown" in str(exc):
                    raise NetnsError(f"{exc} — this kernel has no sch_netem (CONFIG_NET_SCH_NETEM)") from None
                raise
            self.last_transition = time.time()
            self._end(replaced_by=what)
            self._event = self.faults.begin(self.dut, "link", what, channel=self.name_hint, injector="netns",
                                            namespace=self.namespace, params=params)

    def _clear_qdiscs(self) -> None:
        for argv in (["tc", "qdisc", "del", "dev", self.host_if, "root"],
                     ["tc", "-n", self.namespace, "qdisc", "del", "dev", self.ns_if, "root"]):
            done = _run(argv, check=False)
            if done.returncode != 0 and not any(a in done.stderr for a in _ABSENT):
                raise NetnsError(f"`{' '.join(argv)}` failed (exit {done.returncode}): {done.stderr.strip()}")

    def _end(self, **details: Any) -> None:
        if self._event is not None:
            self.faults.end(self._event, **details)
            self._event = None

    def _require(self) -> None:
        if not self._live:
            raise NetnsError(f"{self.namespace} is not created (create() it first)")

    def _ns(self, argv: list[str]) -> None:
        """``ip …`` inside the namespace."""
        _run(["ip", "-n", self.namespace, *argv])
