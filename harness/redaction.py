"""The one rule for secrets in evidence: a rig's credentials and any private key never reach a run folder.

Evidence is handed to someone who does not trust us (the ICI operator), so it must not hand them the
keys to the device either. Every writer of evidence — the rig copy in ``config/``, the transcript,
the DUT's log — passes its text through a ``Redactor`` built from the rig; the same rule runs once
more over the whole run folder just before the seal (``sweep``), for whatever a plugin wrote itself.

The rule: each secret of the rig (every ``credentials.*.password``; also as it looks JSON-escaped)
becomes ``<redacted sha256:HEX>`` — HEX is the SHA-256 of the secret, so the operator can still tell
which credential was used — and every PEM private-key block becomes ``<redacted private key
sha256:HEX>``; a file that is nothing but a private key is removed before the seal. Secrets shorter
than ``MIN_SECRET_CHARS`` cannot be told apart from ordinary text and are not replaced (SECURITY.md).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

MIN_SECRET_CHARS = 4
_PEM_PRIVATE = re.compile(rb"-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----.*?-----END \1PRIVATE KEY-----", re.S)


def marker(secret: bytes, what: str = "") -> bytes:
    return f"<redacted {what}sha256:{hashlib.sha256(secret).hexdigest()}>".encode()


class Redactor:
    """Replaces a fixed set of secrets and any PEM private key, in text or bytes."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets = sorted({s for s in secrets if len(s) >= MIN_SECRET_CHARS}, key=len, reverse=True)
        forms: dict[bytes, bytes] = {}
        for secret in self.secrets:
            raw = secret.encode()
            for form in (raw, json.dumps(secret)[1:-1].encode(), json.dumps(secret, ensure_ascii=False)[1:-1].encode()):
                forms.setdefault(form, marker(raw))
        self._markers = forms
        self._pattern = re.compile(b"|".join(_bounded(f) for f in sorted(forms, key=len, reverse=True))) \
            if forms else None

    def data(self, data: bytes) -> bytes:
        if self._pattern is not None:
            data = self._pattern.sub(lambda m: self._markers[m.group()], data)
        if b"PRIVATE KEY-----" in data:
            data = _PEM_PRIVATE.sub(lambda m: marker(m.group(), "private key "), data)
        return data

    def text(self, text: str) -> str:
        return self.data(text.encode("utf-8", "surrogateescape")).decode("utf-8", "surrogateescape")

    def value(self, value: Any) -> Any:
        """A JSON-like value with every string redacted; numbers stay numbers (a record stays valid JSON)."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.value(k): self.value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        return value

    def finds(self, data: bytes) -> bool:
        return self.data(data) != data


def _bounded(form: bytes) -> bytes:
    """A secret matched as a whole token: "2718" is not redacted out of the number 1765142718 (which would
    corrupt a timestamp), but is out of "pin 2718", '"2718"' or "--pin=2718"."""
    alnum = rb"[A-Za-z0-9]"
    head = rb"(?<!" + alnum + rb")" if form[:1].isalnum() else b""
    tail = rb"(?!" + alnum + rb")" if form[-1:].isalnum() else b""
    return head + re.escape(form) + tail


def appears_in(secret: str, text: str) -> bool:
    """Does ``secret`` (any length) stand in ``text`` as a whole token? (a rig check: a password on a command line)"""
    return bool(secret) and re.search(_bounded(secret.encode()), text.encode()) is not None


def rig_secrets(rig: Any) -> list[str]:
    """Every password and DLMS key (hex, either case) of every DUT's credentials in a rig (a ``Rig``)."""
    found: list[str] = []
    for dut in rig.duts.values():
        for cred in dut.credentials.values():
            found += [cred.password] if cred.password else []
            for key in (getattr(cred, "encryption_key", None), getattr(cred, "authentication_key", None)):
                found += [key, key.lower(), key.upper()] if key else []
    return found


def is_private_key_file(data: bytes) -> bool:
    """A file that is one PEM private key and nothing else (a generated key: removed, not kept redacted)."""
    return _PEM_PRIVATE.fullmatch(data.strip()) is not None


def write_redacted(path: Path, data: bytes, redactor: Redactor) -> None:
    """The one way a copied file enters the evidence."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(redactor.data(data))


def redacted_file(name: str, data: bytes, redactor: Redactor) -> bytes:
    """A file's bytes under the rule: JSON and JSON-lines by their strings (numbers and layout of untouched
    lines kept), anything else as text."""
    if not redactor.finds(data):
        return data
    if name.endswith(".jsonl"):
        return b"".join(_redacted_json_line(line, redactor) for line in data.splitlines(keepends=True))
    if name.endswith(".json"):
        try:
            parsed = json.loads(data)
        except ValueError:
            return redactor.data(data)
        return (json.dumps(redactor.value(parsed), indent=2, ensure_ascii=False) + "\n").encode()
    return redactor.data(data)


def _redacted_json_line(line: bytes, redactor: Redactor) -> bytes:
    if not redactor.finds(line):
        return line
    try:
        parsed = json.loads(line)
    except ValueError:
        return redactor.data(line)
    end = b"\n" if line.endswith(b"\n") else b""
    return json.dumps(redactor.value(parsed), separators=(",", ":"), ensure_ascii=False).encode() + end


def sweep(out: Path, redactor: Redactor) -> list[str]:
    """Apply the rule to every file of a run folder before its seal; what was changed, for a note."""
    from harness.reporting.seal import evidence_files
    from harness.reporting.texts import Msg

    changed: list[str] = []
    for rel in evidence_files(out):
        path = out / rel
        data = path.read_bytes()
        if is_private_key_file(data):
            path.unlink()
            changed.append(Msg("{file} (a private key: removed)", file=rel.as_posix()))
            continue
        redacted = redacted_file(path.name, data, redactor)
        if redacted != data:
            tmp = path.with_name(path.name + ".redacting")
            tmp.write_bytes(redacted)
            tmp.replace(path)
            changed.append(Msg("{file} (redacted)", file=rel.as_posix()))
    return changed
