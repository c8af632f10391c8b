"""The server's storage: SQLAlchemy 2 models on SQLite in the state directory (or any URL SQLAlchemy takes).

Each reading is committed before it is visible through the API; SQLite with ``synchronous=FULL``
keeps every committed row through a SIGKILL of the process (and a power cut of the host).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from datetime import UTC, datetime

from sqlalchemy import JSON, Float, ForeignKey, String, create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

SCRYPT = {"n": 2**14, "r": 8, "p": 1}


class Base(DeclarativeBase):
    pass


class Meter(Base):
    __tablename__ = "meters"
    id: Mapped[str] = mapped_column(String, primary_key=True)
    kind: Mapped[str] = mapped_column(String)


class Reading(Base):
    __tablename__ = "readings"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    meter_id: Mapped[str] = mapped_column(ForeignKey("meters.id"), index=True)
    quantity: Mapped[str] = mapped_column(String)
    value: Mapped[float] = mapped_column(Float)
    original_value: Mapped[float | None] = mapped_column(Float, nullable=True)  # before a confirmed correction
    unit: Mapped[str] = mapped_column(String)
    reading_time: Mapped[str] = mapped_column(String, index=True)  # ISO 8601 UTC, sorts as text
    source: Mapped[str] = mapped_column(String)  # auto | manual

    def as_dict(self) -> dict[str, object]:
        return {"id": str(self.id), "meter_id": self.meter_id, "quantity": self.quantity, "value": self.value,
                "original_value": self.original_value, "unit": self.unit, "reading_time": self.reading_time,
                "source": self.source}


class User(Base):
    __tablename__ = "users"
    name: Mapped[str] = mapped_column(String, primary_key=True)
    role: Mapped[str] = mapped_column(String)
    password_hash: Mapped[str] = mapped_column(String)
    meters: Mapped[list[str]] = mapped_column(JSON, default=list)
    deleted: Mapped[bool] = mapped_column(default=False)

    def as_dict(self) -> dict[str, object]:
        return {"name": self.name, "role": self.role, "meters": list(self.meters or [])}


class Correction(Base):
    __tablename__ = "corrections"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    reading_id: Mapped[int] = mapped_column(ForeignKey("readings.id"))
    status: Mapped[str] = mapped_column(String)  # proposed | confirmed
    old_value: Mapped[float] = mapped_column(Float)
    new_value: Mapped[float] = mapped_column(Float)
    reason: Mapped[str] = mapped_column(String)
    proposed_by: Mapped[str] = mapped_column(String)
    confirmed_by: Mapped[str | None] = mapped_column(String, nullable=True)

    def as_dict(self) -> dict[str, object]:
        return {"id": str(self.id), "reading_id": str(self.reading_id), "status": self.status,
                "old_value": self.old_value, "new_value": self.new_value, "reason": self.reason,
                "proposed_by": self.proposed_by, "confirmed_by": self.confirmed_by}


class AuditEntry(Base):
    __tablename__ = "audit"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    time: Mapped[str] = mapped_column(String)
    user: Mapped[str] = mapped_column(String)
    action: Mapped[str] = mapped_column(String)
    details: Mapped[dict[str, object]] = mapped_column(JSON)

    def as_dict(self) -> dict[str, object]:
        return {"time": self.time, "user": self.user, "action": self.action, "details": self.details}


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def open_database(url: str) -> Engine:
    """The engine, with the schema made; SQLite commits are fsynced (``synchronous=FULL``)."""
    engine = create_engine(url)
    if engine.dialect.name == "sqlite":
        @event.listens_for(engine, "connect")
        def _durable(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.close()
    Base.metadata.create_all(engine)
    return engine


def hash_password(password: str) -> str:
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, **SCRYPT)
    return f"scrypt${salt.hex()}${digest.hex()}"


def password_matches(password: str, stored: str) -> bool:
    try:
        scheme, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    got = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), **SCRYPT)
    return hmac.compare_digest(got.hex(), digest)
