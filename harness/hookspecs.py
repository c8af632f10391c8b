"""pluggy hook specifications: the only extension points of the harness.

A third-party package adds a driver, a fault injector, a suite or a signer by implementing these
hooks in a module registered under the ``harness`` entry-point group; the built-ins in
``harness.plugins`` do exactly the same, so nothing built-in is privileged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("harness")
hookimpl = pluggy.HookimplMarker("harness")


@dataclass(frozen=True)
class DriverSpec:
    """A protocol driver. ``factory(name, profile, dut, timing, transcript, endpoint) -> Device``."""

    protocol: str
    factory: Callable[..., Any]
    description: str = ""


@dataclass(frozen=True)
class FaultInjectorSpec:
    """A fault injector of some ``kind`` (power, time, link, firmware …).

    ``factory(runtime) -> injector``, where runtime is the DUT's ``harness.bench.DutRuntime``; it
    returns None when the injector cannot serve that DUT (e.g. no launch command).
    """

    kind: str
    name: str
    factory: Callable[..., Any]
    description: str = ""


@dataclass(frozen=True)
class SuiteSpec:
    """A conformance suite: a directory of pytest modules whose tests carry check markers."""

    name: str
    path: Path
    description: str = ""


@dataclass(frozen=True)
class SignerSpec:
    """A signing scheme for certificates (``harness.reporting.signing``).

    ``load(key_dir) -> signer`` with ``sign(payload) -> dict``; ``verify(payload, block) -> subject``
    raising ``SignatureInvalid``; ``init(key_dir, name, force=) -> description`` makes a new key, or
    None when keys come from elsewhere (a token, a national PKI).
    """

    name: str
    load: Callable[..., Any]
    verify: Callable[..., str]
    init: Callable[..., str] | None = None
    description: str = ""


class HarnessSpecs:
    @hookspec
    def harness_add_drivers(self) -> list[DriverSpec]:
        """Protocol drivers this plugin provides."""

    @hookspec
    def harness_add_fault_injectors(self) -> list[FaultInjectorSpec]:
        """Fault injectors (power switches, time control, link faults …) this plugin provides."""

    @hookspec
    def harness_add_suites(self) -> list[SuiteSpec]:
        """Conformance suites this plugin provides."""

    @hookspec
    def harness_add_signers(self) -> list[SignerSpec]:
        """Certificate signers this plugin provides."""


@dataclass(frozen=True)
class ResultStoreSpec:
    """Where fleet workers put sealed runs (``harness.fleet.store``): ``factory(location) -> store`` for a
    ``--store SCHEME://…``, with ``put(job, archive, meta)``, ``get(job, dest) -> Path | None`` and
    ``meta(job) -> dict | None``. The built-in ``dir`` store is a folder (a shared mount)."""

    scheme: str
    factory: Callable[[str], Any]
    description: str = ""


class FleetSpecs:
    @hookspec
    def harness_add_result_stores(self) -> list[ResultStoreSpec]:
        """Result stores for the fleet's sealed runs this plugin provides."""
