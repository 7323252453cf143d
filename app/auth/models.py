from datetime import datetime

from sqlalchemy import Index
from sqlmodel import Field, SQLModel

from app.clock import utcnow
from app.db import UTCDateTime


class User(SQLModel, table=True):
    __tablename__ = "app_user"  # "user" is reserved in PostgreSQL

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=64, unique=True)
    full_name: str = Field(max_length=200)
    password_hash: str = Field(max_length=255)
    active: bool = True
    locked: bool = False
    failed_logins: int = 0
    # A lock after repeated failures ends by itself at this time (None: only an admin ends it).
    locked_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    # Set at creation by an admin and by an admin's reset: every call but the change answers 403
    # until the user chooses their own password (SEC-3). Ageing is counted from the last change.
    password_change_required: bool = False
    password_changed_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class UserRole(SQLModel, table=True):
    __tablename__ = "user_role"

    user_id: int = Field(foreign_key="app_user.id", primary_key=True)
    role: str = Field(max_length=20, primary_key=True)


class AuthToken(SQLModel, table=True):
    """A bearer token, stored only as its keyed digest; idle tokens expire, logout revokes."""

    __tablename__ = "auth_token"

    digest: str = Field(primary_key=True, max_length=64)
    user_id: int = Field(foreign_key="app_user.id", index=True)
    created_at: datetime = Field(sa_type=UTCDateTime)
    last_used_at: datetime = Field(sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class PasswordHistory(SQLModel, table=True):
    """A password a user had before (its Argon2 hash): the last N may not be chosen again."""

    __tablename__ = "password_history"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="app_user.id", index=True)
    password_hash: str = Field(max_length=255)
    replaced_at: datetime = Field(sa_type=UTCDateTime)


class SignInFailure(SQLModel, table=True):
    """One refused sign-in, by source: what per-source throttling counts (SEC-4). Rows older
    than the throttling window are pruned; the audit trail keeps the permanent record."""

    __tablename__ = "sign_in_failure"
    __table_args__ = (Index("ix_sign_in_failure_source_at", "source", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    source: str = Field(max_length=64)
    at: datetime = Field(sa_type=UTCDateTime, index=True)
