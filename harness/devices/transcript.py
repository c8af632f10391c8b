"""A record of every request and response, for evidence and for checking invariants afterwards.

One JSON object per line, handed to the kernel as it happens (one ``os.write`` on an unbuffered
``O_APPEND`` descriptor, before the answer goes back to the check), so a killed harness keeps every
exchange up to the kill; ``sync()`` makes it survive the host's power loss as well (fsync, for the
check boundaries). The rig's secrets are redacted as each line is written (``harness.redaction``).

Why it looks the way it does: certification always runs with the transcript on, so its cost is on
every read (issue 18). The line is encoded once with a prepared encoder; the redaction rule walks
the record only when the encoded line could hold a secret at all — a substring test for each form
of each secret as it appears in a JSON line, which holds whenever the rule would change a string of
the record (JSON escapes character by character) — so its output is exactly the rule's. A driver's
answered reads, the bulk of every run, go through a ``form``: the fixed fields of one request encoded
and redacted once, the numbers that vary filled in with one string format per line, same bytes.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from json.encoder import c_make_encoder, encode_basestring_ascii  # type: ignore[attr-defined]
from pathlib import Path
from typing import Any

from harness.redaction import Redactor


def _encoder() -> Callable[[Any], str]:
    """``json.dumps(record, separators=(",", ":"))``, same bytes (ensure_ascii: what every reader of
    transcript.jsonl has always seen), without building an encoder on every call: the C encoder, made once."""
    plain = json.JSONEncoder(separators=(",", ":"))
    if c_make_encoder is None:
        return plain.encode

    def default(value: Any) -> Any:
        return plain.default(value)  # raises TypeError as json.dumps does
    chunks = c_make_encoder(None, default, encode_basestring_ascii, None, ":", ",", False, False, True)
    return lambda record: "".join(chunks(record, 0))


_encode = _encoder()
_PRIVATE_KEY = "PRIVATE KEY-----"  # what Redactor.data looks for before it tries its PEM pattern


def line_needles(redactor: Redactor) -> tuple[str, ...]:
    """Substrings of which an encoded line holds at least one whenever ``redactor.value`` would change
    a string in its record: every form the rule matches of every secret, as JSON writes it inside a
    string, and the private-key marker."""
    needles = {_PRIVATE_KEY}
    for secret in redactor.secrets:
        for form in (secret, json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]):
            needles.add(json.dumps(form)[1:-1])
    return tuple(sorted(needles))


VARIES = object()  # a field of a ``Transcript.form`` filled per record


class Transcript:
    def __init__(self, path: Path, redactor: Redactor | None = None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.redactor = redactor or Redactor()  # evidence: the rig's secrets never reach it
        self._needles = line_needles(self.redactor)
        self._fd: int | None = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        self._lock = threading.Lock()

    def record(self, dut: str, **fields: Any) -> None:
        record = {"t": round(time.time(), 6), "dut": dut, **fields}
        line = _encode(record)
        for needle in self._needles:
            if needle in line:  # it may hold a secret: the rule's own walk decides
                line = _encode(self.redactor.value(record))
                break
        self._write((line + "\n").encode())

    def _rest(self, data: bytes) -> None:
        while data:
            written = os.write(self._fd, data) if self._fd is not None else 0
            if written <= 0:
                raise OSError(f"{self.path}: the transcript takes no more bytes")
            data = data[written:]

    def form(self, dut: str, fields: list[tuple[str, Any]]) -> Callable[..., None]:
        """A writer of records of one shape — a driver's answered read of one request, say: ``fields`` in
        order, those given as ``VARIES`` filled per record by the writer's arguments, the rest encoded and
        redacted once. Each line is byte for byte what ``record(dut, **fields)`` writes for the same values
        (the rule applies to a varying value that holds a string), at a fraction of the cost."""
        parts = ['"t":%s', _encode(self.redactor.value({"dut": dut}))[1:-1].replace("%", "%%")]
        for key, value in fields:
            if value is VARIES:
                parts.append(_encode(self.redactor.value(key)) + ":%s")
            else:
                parts.append(_encode(self.redactor.value({key: value}))[1:-1].replace("%", "%%"))
        line = "{" + ",".join(parts) + "}\n"
        now, redact, put = time.time, self.redactor.value, self._write

        def write(*values: Any) -> None:
            texts = [repr(round(now(), 6))]
            for value in values:
                kind = value.__class__
                if kind is int or (kind is float and value - value == 0):  # as the encoder writes them
                    texts.append(repr(value))
                    continue
                text = _encode(value)
                if '"' in text:  # a string: the rule decides, as for the whole record
                    text = _encode(redact(value))
                texts.append(text)
            put((line % tuple(texts)).encode())
        return write

    def _write(self, data: bytes) -> None:
        with self._lock:
            if self._fd is not None:
                written = os.write(self._fd, data)
                if written < len(data):  # a regular file takes a line whole; a signal or a full disk may not
                    self._rest(data[written:])

    def sync(self) -> None:
        """Every line written so far on the disk (a check boundary: the host may lose power next)."""
        with self._lock:
            if self._fd is not None:
                os.fsync(self._fd)

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                fd, self._fd = self._fd, None
                os.fsync(fd)
                os.close(fd)
