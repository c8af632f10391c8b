"""An AMR server's REST API (docs/amr-api.yaml) as the robustness campaigns see it: HTTP/1.1 on its TCP port.

The valid request is the contract's unauthenticated ``GET {base_path}/health`` — a safe method (RFC 9110 §9.2.1)
that needs no credential, so a storm of it changes nothing and no reproducer holds a token; "served" is a 2xx
answer. The essential function (an authenticated read of the meter list through the AMR driver) is the
monitor's, not this target's (robustness/amr_essential.py). Only the profile's ``amr.base_path`` is used."""

from __future__ import annotations

from typing import Any

from harness.conformance.wire.http_fuzz import http_cases, probe, response_length, successful


def amr_target(dut: Any, target: type) -> Any:
    host, port = str(dut.endpoint["host"]), int(dut.endpoint["port"])
    authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    base = dut.profile.amr.base_path.rstrip("/")
    valid_request = probe(base, authority)
    return target("http", host, port, valid_request, response_length, successful,
                  lambda seed, count: http_cases(seed, count, base, authority), lambda n: valid_request)
