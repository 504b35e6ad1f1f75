"""The control store of the service: tenants and their API keys (hashed), apart from any tenant's notes.

A key looks like ``egm_<key_id>_<secret>``. ``key_id`` is public (it names the key in listings and
revocations); only ``sha256(salt || secret)`` with a per-key random salt is stored, so a leaked
control database does not leak usable keys. The clear key is returned once, by ``create_key``.

Usage::

    accounts = AccountStore(open_accounts_engine("sqlite:////data/control.db"))
    accounts.create_tenant("acme")
    key, clear = accounts.create_key("acme", label="ci")
    accounts.verify(clear)  # -> "acme"
"""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Boolean, Engine, ForeignKey, String, create_engine, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from memory.database import is_sqlite, postgres_driver_url, sqlite_engine
from memory.errors import Conflict, InvalidInput, NotFound, StorageError
from memory.migrate import MigrationTree, upgrade
from memory.sqltypes import UTCDateTime

# Tenant ids double as folder names and PostgreSQL schema names: keep them boring.
TENANT_ID = re.compile(r"^[a-z][a-z0-9_]{0,47}$")
KEY_PREFIX = "egm"


class _Base(DeclarativeBase):
    pass


class TenantRow(_Base):
    __tablename__ = "engram_tenants"

    id: Mapped[str] = mapped_column(String(48), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)


class ApiKeyRow(_Base):
    __tablename__ = "engram_api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(48), ForeignKey("engram_tenants.id"), index=True)
    label: Mapped[str] = mapped_column(String(200), default="")
    salt: Mapped[str] = mapped_column(String(64))
    digest: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


@dataclass(frozen=True)
class Tenant:
    id: str
    created_at: datetime
    disabled: bool


@dataclass(frozen=True)
class ApiKey:
    """A key's public record (never the secret)."""

    id: str
    tenant_id: str
    label: str
    created_at: datetime
    revoked_at: datetime | None


ACCOUNTS_MIGRATIONS = MigrationTree(Path(__file__).parent / "accounts_migrations", "alembic_version_accounts",
                                    "engram_tenants")


def open_accounts_engine(url: str) -> Engine:
    """An engine on the control database with its tables migrated. Usage: ``open_accounts_engine(url)``."""
    if is_sqlite(url):
        # Engram's pragmas, as on every store file: WAL (key checks read while an admin writes),
        # enforced foreign keys (a key's tenant), the busy timeout and the WAL-switch retry.
        engine = sqlite_engine(url, durable=True)
    else:
        engine = create_engine(postgres_driver_url(url), pool_pre_ping=True)
    upgrade(engine, ACCOUNTS_MIGRATIONS)
    return engine


def digest(salt: str, secret: str) -> str:
    """The stored form of a key's secret."""
    return hashlib.sha256(bytes.fromhex(salt) + secret.encode()).hexdigest()


def split_key(clear: str) -> tuple[str, str] | None:
    """``(key_id, secret)`` of a well-formed key, else None."""
    parts = clear.split("_", 2) if isinstance(clear, str) else []
    if len(parts) != 3 or parts[0] != KEY_PREFIX or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


class AccountStore:
    """Tenants and API keys on one SQLAlchemy engine. Thread-safe (a session per call)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @contextmanager
    def _tx(self) -> Iterator[Session]:
        try:
            with self._sessions.begin() as session:
                yield session
        except IntegrityError as exc:
            raise Conflict("already exists") from exc
        except SQLAlchemyError as exc:
            raise StorageError(f"control database error: {exc.__class__.__name__}") from exc

    def ping(self) -> None:
        """Raise StorageError when the control database cannot be read."""
        with self._tx() as s:
            s.execute(select(TenantRow.id).limit(1))

    # ---- tenants --------------------------------------------------------------------------

    def create_tenant(self, tenant_id: str) -> Tenant:
        """A new tenant; Conflict when the id is taken, InvalidInput when it is not a valid id."""
        check_tenant_id(tenant_id)
        with self._tx() as s:
            if s.get(TenantRow, tenant_id) is not None:
                raise Conflict(f"tenant {tenant_id!r} already exists")
            row = TenantRow(id=tenant_id, created_at=_now(), disabled=False)
            s.add(row)
            return _tenant(row)

    def get_tenant(self, tenant_id: str) -> Tenant:
        with self._tx() as s:
            row = s.get(TenantRow, tenant_id)
            if row is None:
                raise NotFound(f"no tenant {tenant_id!r}")
            return _tenant(row)

    def list_tenants(self) -> list[Tenant]:
        with self._tx() as s:
            return [_tenant(r) for r in s.scalars(select(TenantRow).order_by(TenantRow.id))]

    def set_disabled(self, tenant_id: str, disabled: bool) -> Tenant:
        """Disable (or enable) a tenant: its keys stop (or start) working; its data is kept."""
        with self._tx() as s:
            row = s.get(TenantRow, tenant_id)
            if row is None:
                raise NotFound(f"no tenant {tenant_id!r}")
            row.disabled = disabled
            return _tenant(row)

    # ---- keys -----------------------------------------------------------------------------

    def create_key(self, tenant_id: str, label: str = "") -> tuple[ApiKey, str]:
        """A new key for an existing tenant: its public record and the clear key (shown once)."""
        if not isinstance(label, str) or len(label) > 200:
            raise InvalidInput("label must be a string of at most 200 characters")
        key_id, secret, salt = secrets.token_hex(8), secrets.token_urlsafe(32), secrets.token_hex(16)
        with self._tx() as s:
            if s.get(TenantRow, tenant_id) is None:
                raise NotFound(f"no tenant {tenant_id!r}")
            row = ApiKeyRow(id=key_id, tenant_id=tenant_id, label=label, salt=salt, digest=digest(salt, secret),
                            created_at=_now(), revoked_at=None)
            s.add(row)
            return _key(row), f"{KEY_PREFIX}_{key_id}_{secret}"

    def list_keys(self, tenant_id: str) -> list[ApiKey]:
        with self._tx() as s:
            rows = s.scalars(select(ApiKeyRow).where(ApiKeyRow.tenant_id == tenant_id).order_by(ApiKeyRow.created_at))
            return [_key(r) for r in rows]

    def revoke_key(self, key_id: str, tenant_id: str | None = None) -> ApiKey:
        """Revoke a key (idempotent). With ``tenant_id``, a key of another tenant is NotFound."""
        with self._tx() as s:
            row = s.get(ApiKeyRow, key_id) if isinstance(key_id, str) else None
            if row is None or (tenant_id is not None and row.tenant_id != tenant_id):
                raise NotFound(f"no key {key_id!r}")
            if row.revoked_at is None:
                row.revoked_at = _now()
            return _key(row)

    def verify(self, clear: str) -> str | None:
        """The tenant id a clear key belongs to, or None (unknown, malformed, revoked or tenant disabled)."""
        parts = split_key(clear)
        if parts is None:
            return None
        key_id, secret = parts
        with self._tx() as s:
            found = s.execute(select(ApiKeyRow.salt, ApiKeyRow.digest, ApiKeyRow.revoked_at, TenantRow.id,
                                     TenantRow.disabled).join(TenantRow, TenantRow.id == ApiKeyRow.tenant_id)
                              .where(ApiKeyRow.id == key_id)).first()
        if found is None:
            return None
        salt, stored, revoked_at, tenant_id, disabled = found
        if revoked_at is not None or disabled or not hmac.compare_digest(stored, digest(salt, secret)):
            return None
        return tenant_id

    def close(self) -> None:
        self._engine.dispose()


def check_tenant_id(tenant_id: object) -> str:
    """``tenant_id`` if it is a valid id (lowercase letter, then up to 47 of ``[a-z0-9_]``)."""
    if not isinstance(tenant_id, str) or not TENANT_ID.match(tenant_id):
        raise InvalidInput("tenant id must match [a-z][a-z0-9_]{0,47}")
    return tenant_id


def _now() -> datetime:
    return datetime.now(UTC)


def _tenant(row: TenantRow) -> Tenant:
    return Tenant(row.id, row.created_at, bool(row.disabled))


def _key(row: ApiKeyRow) -> ApiKey:
    return ApiKey(row.id, row.tenant_id, row.label or "", row.created_at, row.revoked_at)
