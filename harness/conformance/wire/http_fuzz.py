"""Malformed HTTP/1.1 requests (RFC 9110, RFC 9112) for the robustness campaign against an AMR server's API:
request lines, header fields, oversized header sections, bad chunked framing and invalid JSON bodies to the
documented endpoints (docs/amr-api.yaml), bounded in size and reproducible from a seed. Same ``Case`` as the
Modbus generator, so one campaign runner sends them all.

What the cases may do to the server (the safety argument, case by case):
- Every case is either malformed below the application (request line, header section, chunked framing: RFC
  9112 §2.2, §3, §5, §7.1 — a conforming server answers 400/431/501 or closes; no handler runs), or a sound
  message whose *method is safe* (GET/HEAD, RFC 9110 §9.2.1: no state change is requested), or a state-changing
  method (POST/PUT/DELETE) *without any credential*: the contract makes every state-changing endpoint need a
  bearer token (docs/amr-api.yaml ``security``), so the request must be refused with 401 before its body means
  anything. A server that accepted one would fail the access-control checks; its body is invalid JSON anyway,
  so nothing it could store.
- ``/login`` is never sent a body: a login attempt, even a garbled one, may be audited and counted towards an
  account's lockout (cl. 18–21 lockout), which is state. ``/health`` and the read endpoints get GETs only.
- No case carries a credential, so no reproducer holds one.
"""

from __future__ import annotations

import random

from harness.conformance.wire.modbus_fuzz import Case

FAMILIES = (("request_line", 25), ("header_field", 20), ("oversized_header", 10), ("chunked", 15),
            ("json_body", 20), ("truncated", 10))
# Past the common header-section limits (8 KiB, 16 KiB); every case stays below 64 KiB so that the reproducer's
# pcap holds it in one IP packet.
OVERSIZED = (8 * 1024 + 1, 16 * 1024 + 1, 48 * 1024)
MAX_CASE = 60_000
# Endpoints that change state when authenticated (docs/amr-api.yaml); the cases send them no credential.
UNAUTHENTICATED_WRITES = (("POST", "/users"), ("POST", "/corrections"), ("POST", "/archive"),
                          ("PUT", "/archive/1"), ("DELETE", "/users/nobody"), ("POST", "/meters/1/read"),
                          ("POST", "/corrections/1/confirm"))
READS = ("/health", "/meters", "/meters/1/readings", "/export?format=csv", "/audit", "/users", "/reports/electricity")


def request(method: str, path: str, host: str, headers: tuple[str, ...] = (), body: bytes = b"") -> bytes:
    """A sound HTTP/1.1 request (the caller breaks what it means to)."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", *headers]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def probe(base: str, host: str) -> bytes:
    """The valid request: the contract's unauthenticated health read (a safe method, no credential)."""
    return request("GET", f"{base}/health", host)


def _invalid_json(rng: random.Random) -> tuple[bytes, str]:
    choice = rng.randrange(7)
    if choice == 0:
        return b'{"user": "x", "role": ', "JSON cut off"
    if choice == 1:
        depth = rng.choice((64, 1000, 10000))
        return b"[" * depth, f"{depth} unclosed arrays"
    if choice == 2:
        return b'{"value": 1e999999, "reason": NaN}', "numbers JSON does not have"
    if choice == 3:
        return b'{"user": "\xff\xfe\xc0\xaf"}', "invalid UTF-8"
    if choice == 4:
        return b"\x00" * rng.randint(1, 64), "NUL bytes"
    if choice == 5:
        return b"{" + b'"k":1,' * rng.randint(100, 2000) + b"}", "trailing comma after many keys"
    return rng.randbytes(rng.randint(1, 256)), "random bytes"


def http_cases(seed: int, count: int, base: str, host: str) -> list[Case]:
    """``count`` cases for the API under ``base`` on ``host``, the same for the same seed."""
    rng = random.Random(seed)
    names, weights = zip(*FAMILIES, strict=True)
    cases = []
    for index in range(count):
        family = rng.choices(names, weights)[0]
        path = base + rng.choice(READS)
        if family == "request_line":
            choice = rng.randrange(8)
            line, what = [
                (f"G\x00ET {path} HTTP/1.1", "NUL in the method"),
                (f"GET {path}", "no HTTP version (HTTP/0.9 style)"),
                (f"GET {path} HTTP/9.9", "unknown major version"),
                (f"GET  {path}  HTTP/1.1 extra", "extra spaces and a fourth field"),
                (f"{rng.randbytes(6).hex()}{{}} {path} HTTP/1.1", "a method that is no token"),
                (f"GET /{'a' * rng.choice((4096, 16384, 50000))} HTTP/1.1", "a very long request target"),
                (f"GET {path}\x7f\x01 HTTP/1.1", "control characters in the target"),
                ("\r\n" * rng.randint(1, 50) + f"GET {path} HTTP/1.1\n\r", "empty lines, then a bare LF-CR end"),
            ][choice]
            frame = (line + f"\r\nHost: {host}\r\n\r\n").encode("latin-1")
        elif family == "header_field":
            choice = rng.randrange(7)
            header, what = [
                ("Host : x", "whitespace before the colon (RFC 9112 §5.1: must be rejected)"),
                ("NoColonHere", "a field line without a colon"),
                ("X-Folded: a\r\n  b", "obsolete line folding"),
                ("Bad\x01Name: v", "a control character in a field name"),
                ("Content-Length: 5\r\nContent-Length: 7", "two different Content-Lengths"),
                (f"Content-Length: {rng.choice(('-1', 'abc', '99999999999999999999', '0x10'))}",
                 "a Content-Length that is no number"),
                ("Transfer-Encoding: gzip, chunked\r\nContent-Length: 3", "both Transfer-Encoding and Content-Length"),
            ][choice]
            frame = request("GET", path, host, (header,))
        elif family == "oversized_header":
            size = rng.choice(OVERSIZED)
            if rng.random() < 0.5:
                frame, what = request("GET", path, host, (f"X-Big: {'b' * size}",)), f"one {size}-byte field"
            else:
                n = size // 16
                frame = request("GET", path, host, tuple(f"X-H{i}: {i:08d}" for i in range(n)))
                what = f"{n} fields"
        elif family == "chunked":
            method, where = rng.choice(UNAUTHENTICATED_WRITES)
            body, what = rng.choice([
                (b"zz\r\n{}\r\n0\r\n\r\n", "a chunk size that is not hex"),
                (b"-5\r\n{}\r\n0\r\n\r\n", "a negative chunk size"),
                (b"ffffffffffffffff\r\n{}", "a chunk size of 2^64 - 1"),
                (b"5\r\n{}\r\n0\r\n\r\n", "a chunk shorter than its size"),
                (b"2\r\n{}0\r\n\r\n", "no CRLF after the chunk data"),
                (b"2;" + b"x" * 9000 + b"\r\n{}\r\n0\r\n\r\n", "a 9000-byte chunk extension"),
                (b"2\r\n{}\r\n", "no last chunk"),
            ])
            frame = request(method, base + where, host, ("Transfer-Encoding: chunked",
                                                         "Content-Type: application/json")) + body
            what = f"{method} {where} (no credential) chunked: {what}"
        elif family == "json_body":
            method, where = rng.choice(UNAUTHENTICATED_WRITES)
            body, what = _invalid_json(rng)
            frame = request(method, base + where, host, ("Content-Type: application/json",), body)
            what = f"{method} {where} (no credential): {what}"
        else:
            method, where = rng.choice((("GET", rng.choice(READS)), *UNAUTHENTICATED_WRITES))
            sound = request(method, base + where, host, ("Content-Type: application/json",),
                            b'{"x": 1}' if method != "GET" else b"")
            cut = rng.randint(1, len(sound) - 1)
            frame, what = sound[:cut], f"{method} {where} cut to {cut} of {len(sound)} bytes"
        cases.append(Case(index, family, what, frame[:MAX_CASE]))
    return cases


def response_length(buf: bytes) -> int | None:
    """HTTP/1.1: the length of the first response in ``buf`` once its end is known (RFC 9112 §6.3) — the header
    section, then Content-Length bytes or the chunks up to the last one; None while it is not complete (a
    response delimited by the connection closing ends when the reader sees the close)."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    head, start = buf[:end].lower(), end + 4
    status = head[9:12]
    if status[:1] == b"1" or status in (b"204", b"304"):
        return start
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip() == b"transfer-encoding" and b"chunked" in value:
            return _chunked_end(buf, start)
        if name.strip() == b"content-length" and value.strip().isdigit():
            return start + int(value.strip())
    return None


def _chunked_end(buf: bytes, pos: int) -> int | None:
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return None
        try:
            size = int(buf[pos:eol].split(b";")[0], 16)
        except ValueError:
            return eol  # broken framing from the server: what arrived is all there is
        if size == 0:
            trailer = buf.find(b"\r\n\r\n", eol)
            return None if trailer < 0 else trailer + 4
        pos = eol + 2 + size + 2
        if pos > len(buf):
            return None


def successful(reply: bytes | None) -> bool:
    """Is ``reply`` a 2xx response (the valid request's answer)?"""
    return bool(reply) and reply[:7] == b"HTTP/1." and reply[9:10] == b"2"
