"""A simulator's secrets from a file, never from its command line.

The harness hands a launched DUT the rig's credentials as a JSON file outside the run folder
(launch placeholder ``{credentials_file}``, also ``$HARNESS_CREDENTIALS_FILE``): role -> {user,
password}. A command line is visible in ``ps`` to every user of the machine and is written to the
DUT's log; a 0600 file is neither.
"""

from __future__ import annotations

import json
from pathlib import Path

Credentials = dict[str, dict[str, str]]


def read_credentials(path: Path) -> Credentials:
    """role -> {user?, password?} (ValueError with the file named when it is not that)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"--credentials-file {path}: not readable as JSON ({exc})") from None
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise ValueError(f"--credentials-file {path}: expected an object role -> {{user, password}}")
    return {str(role): {str(k): str(v) for k, v in entry.items()} for role, entry in data.items()}


def unlock_password(credentials: Credentials) -> str | None:
    """A Modbus meter's write-protection password: the ``unlock`` credential."""
    return credentials.get("unlock", {}).get("password")


def users_spec(credentials: Credentials) -> str:
    """The accounts as ``--users`` writes them (name:password:role,…), for the controller's user store."""
    return ",".join(f"{c['user']}:{c['password']}:{role}" for role, c in credentials.items()
                    if c.get("user") and c.get("password"))
