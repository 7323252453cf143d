"""Engine, the per-request session (the ONLY place that commits), and database-portable types."""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import DateTime, Engine, MetaData, event
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.pool import NullPool
from sqlalchemy.types import TypeDecorator
from sqlmodel import Session, SQLModel, create_engine

from app.clock import as_utc
from app.errors import HomewardError

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


def make_engine(url: str, *, pool: bool = True) -> Engine:
    """An engine for `url`; SQLite gets WAL, foreign keys, a busy timeout and BEGIN IMMEDIATE."""
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            poolclass=None if pool else NullPool,
        )
        _configure_sqlite(engine)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not pysqlite, decide when transactions begin (see "begin" below).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # Take the write lock up front: a deferred transaction that reads and then writes can
        # fail with "database is locked" when another writer got in between (DESIGN §12).
        connection.exec_driver_sql("BEGIN IMMEDIATE")


SessionFactory = Callable[[], Session]


def session_factory_for(engine: Engine) -> SessionFactory:
    """Sessions that keep loaded attributes after commit (responses are built after the flush)."""
    return lambda: Session(engine, expire_on_commit=False)


@contextmanager
def unit_of_work(factory: SessionFactory) -> Iterator[Session]:
    """One transaction: commit on success, roll back on any error.

    A refused operation changes nothing, except that a `HomewardError` may carry an `aftermath`
    (the audit event of a failed login, a scan mismatch, a failed signature...), which is written
    and committed in a fresh transaction after the rollback.
    """
    with factory() as session:
        try:
            yield session
        except HomewardError as exc:
            session.rollback()
            if exc.aftermath is not None:
                exc.aftermath(session)
                session.commit()
            raise
        except BaseException:
            session.rollback()
            raise
        else:
            session.commit()


def get_session(request: Request) -> Iterator[Session]:
    """The request's unit of work; with scope="function" it commits before the response is sent."""
    with unit_of_work(request.app.state.session_factory) as session:
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


SessionDep = Annotated[Session, Depends(get_session, scope="function")]
