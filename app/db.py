"""Engine, the per-request session (the ONLY place that commits), and database-portable types."""

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Any, overload

import psycopg
from psycopg.pq import ExecStatus
from sqlalchemy import DateTime, Engine, MetaData, event
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.pool import NullPool
from sqlalchemy.types import TypeDecorator
from sqlmodel import Session, SQLModel, create_engine

from app.clock import as_utc
from app.config import Settings
from app.errors import Busy, HomewardError

# Stable constraint names, so alembic revisions are reviewable and portable (CONVENTIONS 13).
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata: MetaData = SQLModel.metadata


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp always stored and returned as an aware UTC datetime, on every database."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime refused: Homeward stores aware UTC timestamps only")
        value = as_utc(value)
        # SQLite has no time zone type: store the UTC wall time, read it back as UTC.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else as_utc(value)


@dataclass(frozen=True, slots=True)
class Limits:
    """How long a request may wait on the database, and how many connections a process keeps."""

    busy_timeout_s: float
    statement_timeout_s: float
    pool_size: int

    @classmethod
    def of(cls, settings: Settings) -> "Limits":
        return cls(settings.busy_timeout_s, settings.statement_timeout_s, settings.pool_size)


DEFAULT_LIMITS = Limits.of(Settings.model_construct())  # the settings' defaults, env unread
# Operators' tools (CLI, benchmarks' data loads): long statements are their job, and nobody waits
# behind them for an answer; 0 turns PostgreSQL's statement and idle timeouts off.
OPERATOR_LIMITS = Limits(busy_timeout_s=30.0, statement_timeout_s=0.0, pool_size=5)


def make_engine(url: str, *, pool: bool = True, limits: Limits = DEFAULT_LIMITS) -> Engine:
    """An engine for `url` whose every wait is bounded by `limits` (DESIGN §12 overload).

    SQLite gets WAL, foreign keys, a busy timeout, and BEGIN IMMEDIATE for transactions that
    write. PostgreSQL gets lock, statement and idle-in-transaction timeouts, and a fixed pool.
    """
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": limits.busy_timeout_s},
            poolclass=None if pool else NullPool,
        )
        _configure_sqlite(engine, limits)
        return engine
    busy_ms, statement_ms = (
        int(limits.busy_timeout_s * 1000),
        int(limits.statement_timeout_s * 1000),
    )
    options = (
        f"-c lock_timeout={busy_ms} -c statement_timeout={statement_ms} "
        f"-c idle_in_transaction_session_timeout={max(statement_ms, 10_000)} "
        # Index reads cost about what sequential ones do on SSDs and cached databases; with the
        # default of 4 the planner scans whole tables for the board's page (ADR 0013).
        "-c random_page_cost=1.1"
    )
    return create_engine(
        url,
        connect_args={"options": options, "cursor_factory": LazyDescriptionCursor},
        # No pre-ping: it is a round trip on every checkout; a dead connection fails its request
        # once (503 busy) and the pool replaces it.
        pool_pre_ping=False,
        pool_size=limits.pool_size,
        max_overflow=0,
        pool_timeout=limits.busy_timeout_s,
        pool_recycle=3600,
    )


_TUPLES = frozenset({ExecStatus.TUPLES_OK, ExecStatus.SINGLE_TUPLE, ExecStatus.TUPLES_CHUNK})


class _ResultShape:
    """What psycopg's `Column` reads from its cursor, as it was when the description was asked
    for: a later statement on the cursor does not change a description already handed out."""

    __slots__ = ("_encoding", "adapters", "pgresult")

    def __init__(self, cursor: psycopg.Cursor[Any]) -> None:
        self.pgresult = cursor.pgresult
        self._encoding = cursor._encoding
        self.adapters = cursor.adapters


class _Description(Sequence[psycopg.Column]):
    """A cursor's description whose `Column`s are built when read, not all at every statement."""

    __slots__ = ("_length", "_shape")

    def __init__(self, shape: _ResultShape, length: int) -> None:
        self._shape = shape
        self._length = length

    def __len__(self) -> int:
        return self._length

    @overload
    def __getitem__(self, index: int) -> psycopg.Column: ...
    @overload
    def __getitem__(self, index: slice) -> list[psycopg.Column]: ...
    def __getitem__(self, index: int | slice) -> psycopg.Column | list[psycopg.Column]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._length))]
        if not -self._length <= index < self._length:
            raise IndexError("description index out of range")
        return psycopg.Column(self._shape, index % self._length)  # type: ignore[arg-type]


class LazyDescriptionCursor(psycopg.Cursor[Any]):
    """psycopg's cursor, with `description` built column by column on demand.

    psycopg builds a `Column` for every result column of every statement (about ten Python
    calls each), while SQLAlchemy only asks whether there is a description once it has cached
    the result metadata of a compiled statement: 44 columns a scan (docs/performance.md).
    """

    @property
    def description(self) -> _Description | None:  # type: ignore[override]
        result = self.pgresult
        if result and (result.nfields or result.status in _TUPLES):
            return _Description(_ResultShape(self), result.nfields)
        return None


# Set by `reads_only()`: the current thread's transactions only read, so on SQLite they begin
# deferred and never take (or wait for) the write lock.
_READS_ONLY: ContextVar[bool] = ContextVar("homeward_reads_only", default=False)


@contextmanager
def reads_only() -> Iterator[None]:
    """Transactions begun inside only read: on SQLite they start deferred, not IMMEDIATE."""
    token = _READS_ONLY.set(True)
    try:
        yield
    finally:
        _READS_ONLY.reset(token)


def _configure_sqlite(engine: Engine, limits: Limits) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not pysqlite, decide when transactions begin (see "begin" below).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(limits.busy_timeout_s * 1000)}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # A transaction that writes takes the write lock up front: a deferred one that reads and
        # then writes can fail with "database is locked" when another writer got in between
        # (DESIGN §12). Reads begin deferred, so they never wait behind a writer (WAL).
        connection.exec_driver_sql("BEGIN" if _READS_ONLY.get() else "BEGIN IMMEDIATE")


# PostgreSQL errors that mean "waited too long or lost a lock race": lock_timeout,
# statement_timeout, deadlock victim, serialization failure, too many connections.
_BUSY_SQLSTATES = frozenset({"55P03", "57014", "40P01", "40001", "53300"})


def busy_error(exc: BaseException) -> Busy | None:
    """The 503 `busy` answer for a database wait that ran past its bound, or None."""
    if isinstance(exc, PoolTimeout):
        return Busy("The server is at capacity (no database connection was free); retry shortly.")
    if not isinstance(exc, DBAPIError):
        return None
    original = exc.orig
    if getattr(original, "sqlstate", None) in _BUSY_SQLSTATES:
        return Busy(
            "The records this request needs are in use by another request; nothing was "
            "changed, retry shortly."
        )
    if isinstance(original, sqlite3.OperationalError) and "locked" in str(original):
        return Busy("The database is busy with another change; nothing was changed, retry shortly.")
    return None


SessionFactory = Callable[[], Session]


def session_factory_for(engine: Engine) -> SessionFactory:
    """Sessions that keep loaded attributes after commit (responses are built after the flush)."""
    return lambda: Session(engine, expire_on_commit=False)


@contextmanager
def transaction(session: Session) -> Iterator[Session]:
    """One transaction on `session`: commit on success, roll back on any error.

    A refused operation changes nothing, except that a `HomewardError` may carry an `aftermath`
    (the audit event of a failed login, a scan mismatch, a failed signature...), which is written
    and committed in a fresh transaction after the rollback. A database wait past its bound
    becomes `Busy` (503), after the rollback.
    """
    try:
        yield session
        session.commit()
    except HomewardError as exc:
        session.rollback()
        if exc.aftermath is not None:
            _write_aftermath(session, exc)
        raise
    except Exception as exc:
        _roll_back(session, exc)
        raise


def _write_aftermath(session: Session, exc: HomewardError) -> None:
    assert exc.aftermath is not None
    try:
        exc.aftermath(session)
        session.commit()
    except Exception as failure:
        _roll_back(session, failure)
        raise


def _roll_back(session: Session, exc: Exception) -> None:
    """Roll back after `exc`; a database wait past its bound is raised as `Busy` instead."""
    session.rollback()
    busy = busy_error(exc)
    if busy is not None:
        raise busy from exc


@contextmanager
def unit_of_work(factory: SessionFactory) -> Iterator[Session]:
    """A new session and one transaction on it (see `transaction`)."""
    with factory() as session, transaction(session):
        yield session


def add_unique(session: Session, obj: SQLModel, conflict: HomewardError) -> None:
    """Insert `obj`, turning a unique-constraint race into `conflict` without aborting the request.

    The savepoint matters on PostgreSQL, where a failed statement poisons the whole transaction.
    """
    try:
        with session.begin_nested():
            session.add(obj)
    except IntegrityError as exc:
        raise conflict from exc
