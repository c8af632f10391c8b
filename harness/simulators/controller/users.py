"""The controller's accounts: users with roles, passwords kept only as salted scrypt hashes, and the
lockout that follows repeated failures.

Accounts live in their own fsynced file in the state directory (``users.json``, written like the
NVM) so that they survive power cuts; a password is never stored or logged in clear. The lockout
counts consecutive failures per user name (unknown names too, so probing reveals nothing) in
device time — a lock ends when that much device time has passed, however it passes.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass, field

from harness.simulators.controller.profile import Lockout
from harness.simulators.nvstate import NvStore

SCRYPT = {"n": 2 ** 13, "r": 8, "p": 1, "dklen": 32}  # ~10 ms a check: cheap for a bench, costly for a guesser
FACTORY_ADMIN = ("admin", "admin")  # defect auth_default_password: the account real devices ship with


class UserFile(NvStore):
    FILE = "users.json"


def hash_password(password: str, salt: bytes | None = None) -> dict[str, str]:
    salt = salt or os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, **SCRYPT)
    return {"salt": salt.hex(), "scrypt": digest.hex()}


def password_matches(password: str, stored: dict[str, str]) -> bool:
    digest = hashlib.scrypt(password.encode(), salt=bytes.fromhex(stored["salt"]), **SCRYPT)
    return hmac.compare_digest(digest.hex(), stored["scrypt"])


def parse_users(spec: str, roles: set[str]) -> list[tuple[str, str, str]]:
    """``name:password:role,…`` → (name, password, role); roles must be the profile's."""
    users = []
    for item in (s.strip() for s in spec.split(",") if s.strip()):
        parts = item.split(":")
        if len(parts) != 3 or not all(parts):
            raise ValueError(f"--users entry {item.split(':')[0]!r}...: write name:password:role")
        if parts[2] not in roles:
            raise ValueError(f"--users: role {parts[2]!r} of {parts[0]!r} is not one of the profile's roles "
                             f"({', '.join(sorted(roles))})")
        users.append((parts[0], parts[1], parts[2]))
    return users


class UserStore:
    """Name -> role and password hash, in NVM."""

    def __init__(self, store: UserFile) -> None:
        self.store = store
        self.users: dict[str, dict[str, object]] = (store.load() or {}).get("users", {})

    def ensure(self, name: str, password: str, role: str) -> None:
        """Create an account that does not exist yet; an existing one keeps its password and role
        (accounts are set up on first start, then managed on the device)."""
        if name not in self.users:
            self.users[name] = {"role": role, "password": hash_password(password)}
            self.store.save({"users": self.users})

    def set_password(self, name: str, password: str) -> bool:
        """A new password for an existing account (False: no such account)."""
        if name not in self.users:
            return False
        self.users[name] = {"role": self.users[name]["role"], "password": hash_password(password)}
        self.store.save({"users": self.users})
        return True

    def role_of(self, name: str) -> str | None:
        user = self.users.get(name)
        return None if user is None else str(user["role"])

    def check(self, name: str, password: str) -> str | None:
        """The user's role when the password is right, else None."""
        user = self.users.get(name)
        if user is None:
            hash_password(password)  # the same work for an unknown name: no timing oracle
            return None
        return str(user["role"]) if password_matches(password, user["password"]) else None  # type: ignore[arg-type]


@dataclass
class LockoutTracker:
    """Consecutive failures per user name and the lock (or delay) they earn."""

    policy: Lockout | None
    enabled: bool = True  # False: defect auth_no_lockout
    failures: dict[str, int] = field(default_factory=dict)
    until: dict[str, float] = field(default_factory=dict)  # name -> device time the lock/delay ends

    def locked(self, name: str, now: float) -> bool:
        return self.enabled and self.policy is not None and self.policy.kind == "lock" and \
            self.until.get(name, 0.0) > now

    def delay_s(self, name: str, now: float) -> float:
        """Seconds to hold the answer to this user's next attempt (lockout kind ``delay``)."""
        if not self.enabled or self.policy is None or self.policy.kind != "delay" or self.until.get(name, 0.0) <= now:
            return 0.0
        return self.policy.duration_s

    def failed(self, name: str, now: float) -> bool:
        """Count a failure; True when it starts a lock or delay."""
        self.failures[name] = self.failures.get(name, 0) + 1
        if not self.enabled or self.policy is None or self.failures[name] < self.policy.after_failures:
            return False
        self.failures[name] = 0
        self.until[name] = now + self.policy.duration_s
        return True

    def succeeded(self, name: str) -> None:
        self.failures.pop(name, None)
        self.until.pop(name, None)
