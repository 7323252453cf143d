"""Test database and clients. Every test runs inside a transaction rolled back at the end, on the
database named by HOMEWARD_TEST_DATABASE_URL (a PostgreSQL server: a fresh database is created on it
and dropped after), or on a fresh SQLite file. The schema is built with alembic, never create_all.
"""

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlmodel import Session

from app import demo
from app.auth import service as auth
from app.auth.permissions import Role
from app.config import Settings
from app.db import SessionFactory, make_engine, session_factory_for, unit_of_work
from app.main import create_app
from app.migrate import upgrade
from tests.helpers import PASSWORD, Api

PG_ENV = "HOMEWARD_TEST_DATABASE_URL"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked postgres_only are skipped on SQLite (it serializes writers: no interleaving)."""
    if os.environ.get(PG_ENV):
        return
    skip = pytest.mark.skip(reason=f"needs PostgreSQL ({PG_ENV})")
    for item in items:
        if "postgres_only" in item.keywords:
            item.add_marker(skip)


def _approve_installed(url: str) -> None:
    """QC-3: what a site's QA does before first use, done once per test database through the
    services with a real e-signature: approve the shipped default specification and GMP settings
    (so every test can register batches; tests of change control itself use `fresh_engine`)."""
    settings = Settings(database_url=url, argon2_time_cost=1, argon2_memory_kib=1024)
    engine = make_engine(url)
    try:
        with unit_of_work(session_factory_for(engine)) as session:
            approver = auth.create_user(
                session,
                settings,
                actor="test",
                username="installation-qa",
                full_name="Installation QA",
                password=PASSWORD,
                roles=[Role.QA],
            )
            demo.approve_installed(session, settings, approver=approver, password=PASSWORD)
    finally:
        engine.dispose()


@contextmanager
def _migrated_database(directory: Path, *, approved: bool = True) -> Iterator[str]:
    """A new database at the newest schema, dropped afterwards: PostgreSQL if configured. With
    `approved`, the shipped specification and GMP settings are approved by QA (QC-3)."""
    server_url = os.environ.get(PG_ENV)
    if not server_url:
        url = f"sqlite:///{directory / f'homeward-{uuid.uuid4().hex[:8]}.db'}"
        upgrade(url)
        if approved:
            _approve_installed(url)
        yield url
        return
    name = f"homeward_test_{uuid.uuid4().hex[:12]}"
    server = make_url(server_url)
    admin = create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = server.set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(url)
        if approved:
            _approve_installed(url)
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with _migrated_database(tmp_path_factory.mktemp("db")) as url:
        yield url


@pytest.fixture
def committed_engine(tmp_path: Path) -> Iterator[Engine]:
    """An engine on a database of its own whose commits are real: for tests of concurrent
    transactions, which cannot share the rolled-back test transaction."""
    with _migrated_database(tmp_path) as url:
        engine = make_engine(url)
        try:
            yield engine
        finally:
            engine.dispose()


@pytest.fixture
def fresh_engine(tmp_path: Path) -> Iterator[Engine]:
    """An engine on a database of its own as installed: at the newest schema, nothing approved
    (QC-3), commits real."""
    with _migrated_database(tmp_path, approved=False) as url:
        engine = make_engine(url)
        try:
            yield engine
        finally:
            engine.dispose()


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def dialect(engine: Engine) -> str:
    return engine.dialect.name


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    return Settings(
        environment="development",
        database_url=database_url,
        argon2_time_cost=1,
        argon2_memory_kib=1024,
        max_body_bytes=65_536,
    )


@pytest.fixture
def connection(engine: Engine) -> Iterator[Connection]:
    """A connection inside a transaction that is rolled back after the test."""
    with engine.connect() as connection:
        transaction = connection.begin()
        try:
            yield connection
        finally:
            transaction.rollback()


@pytest.fixture
def session_factory(connection: Connection) -> SessionFactory:
    # Every commit of the application becomes a savepoint release inside the test transaction.
    return lambda: Session(
        bind=connection, expire_on_commit=False, join_transaction_mode="create_savepoint"
    )


@pytest.fixture
def db(session_factory: SessionFactory) -> Iterator[Session]:
    with session_factory() as session:
        yield session


@pytest.fixture
def client(settings: Settings, session_factory: SessionFactory) -> Iterator[TestClient]:
    with TestClient(create_app(settings, session_factory)) as client:
        yield client


@pytest.fixture
def api(client: TestClient, db: Session, settings: Settings) -> Api:
    return Api(client, db, settings)


@pytest.fixture
def api_with_skew(
    db: Session, settings: Settings, session_factory: SessionFactory
) -> Iterator[Callable[[int], Api]]:
    """An API driver on an app whose late-entry skew (AUD-6) is the given number of seconds, so
    a test makes a late entry by waiting a moment instead of back-dating rows."""
    with ExitStack() as stack:

        def make(seconds: int) -> Api:
            changed = settings.model_copy(update={"late_entry_skew_s": seconds})
            client = stack.enter_context(TestClient(create_app(changed, session_factory)))
            return Api(client, db, changed)

        yield make
