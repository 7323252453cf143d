"""Test database and clients. Every test runs inside a transaction rolled back at the end, on the
database named by HOMEWARD_TEST_DATABASE_URL (a PostgreSQL server: a fresh database is created on it
and dropped after), or on a fresh SQLite file. The schema is built with alembic, never create_all.
"""

import atexit
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlmodel import Session

from app import demo
from app.auth import service as auth
from app.auth.permissions import Role
from app.config import Settings
from app.db import (
    DEFAULT_LIMITS,
    Limits,
    SessionFactory,
    make_engine,
    session_factory_for,
    unit_of_work,
)
from app.gmp_settings.groups import Group
from app.main import create_app
from app.migrate import upgrade
from tests.helpers import PASSWORD, Api, approve_gmp_settings

PG_ENV = "HOMEWARD_TEST_DATABASE_URL"


# A test that asks for none of these never touches the test database (parsers, label and PDF
# rendering, the CLI on a SQLite file of its own): the same on both passes.
DATABASE_FIXTURES = frozenset({"database_url", "engine", "committed_engine", "fresh_engine"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked postgres_only are skipped on SQLite (it serializes writers: no interleaving).
    On PostgreSQL, tests that use no database are deselected: they ran in the SQLite pass.
    Tests marked long come first: the other test process runs short ones beside them, instead
    of one process finishing the run alone on a long test picked up last."""
    items.sort(key=lambda item: "long" not in item.keywords)  # stable: the rest keep their order
    if os.environ.get(PG_ENV):
        elsewhere = [
            item
            for item in items
            if "postgres_only" not in item.keywords
            and not DATABASE_FIXTURES & set(getattr(item, "fixturenames", ()))
        ]
        if elsewhere:
            config.hook.pytest_deselected(items=elsewhere)
            deselected = set(elsewhere)
            items[:] = [item for item in items if item not in deselected]
        return
    skip = pytest.mark.skip(reason=f"needs PostgreSQL ({PG_ENV})")
    for item in items:
        if "postgres_only" in item.keywords:
            item.add_marker(skip)


def _approve_installed(url: str) -> None:
    """QC-3: what a site's QA does before first use, done once per template database through the
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
            # SEC-5: the suite runs as a site that enforces every qualification rule (shipped
            # off, ADR 0024); tests of a site that does not use `fresh_engine`.
            approve_gmp_settings(
                session,
                settings,
                Group.QUALIFICATION_GATING,
                people=True,
                equipment=True,
                lots=True,
            )
    finally:
        engine.dispose()


# One database at the newest schema per test process and state (approved or as installed), built
# once and copied for every database a test asks for (issue 12 item 10): a file copy on SQLite,
# CREATE DATABASE ... TEMPLATE on PostgreSQL. Migrating (and approving) each copy instead cost a
# second or more per test of real commits.
_TEMPLATES: dict[tuple[str, bool], str] = {}


def _template(server_url: str | None, approved: bool) -> str:
    """The template database of this process (a SQLite path, or a PostgreSQL database name)."""
    key = (server_url or "sqlite", approved)
    if key in _TEMPLATES:
        return _TEMPLATES[key]
    if server_url is None:
        directory = Path(tempfile.mkdtemp(prefix="homeward-template-"))
        atexit.register(shutil.rmtree, directory, True)
        path = directory / "homeward-template.db"
        url = f"sqlite:///{path}"
        _TEMPLATES[key] = str(path)
    else:
        name = f"homeward_template_{uuid.uuid4().hex[:12]}"
        with _admin(server_url) as admin:
            admin.execute(text(f'CREATE DATABASE "{name}"'))
        atexit.register(_drop, server_url, name)
        url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
        _TEMPLATES[key] = name
    upgrade(url)
    if approved:
        _approve_installed(url)
    return _TEMPLATES[key]


@contextmanager
def _admin(server_url: str) -> Iterator[Connection]:
    admin = create_engine(
        make_url(server_url).set(database="postgres"), isolation_level="AUTOCOMMIT"
    )
    try:
        with admin.connect() as connection:
            yield connection
    finally:
        admin.dispose()


def _drop(server_url: str, name: str) -> None:
    with _admin(server_url) as admin:
        admin.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextmanager
def _migrated_database(directory: Path, *, approved: bool = True) -> Iterator[str]:
    """A new database at the newest schema (a copy of the process's template), dropped
    afterwards: PostgreSQL if configured. With `approved`, the shipped specification and GMP
    settings are approved by QA (QC-3)."""
    server_url = os.environ.get(PG_ENV)
    if not server_url:
        template = _template(None, approved)
        path = directory / f"homeward-{uuid.uuid4().hex[:8]}.db"
        shutil.copyfile(template, path)
        yield f"sqlite:///{path}"
        return
    template = _template(server_url, approved)
    name = f"homeward_test_{uuid.uuid4().hex[:12]}"
    with _admin(server_url) as admin:
        admin.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        _drop(server_url, name)


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with _migrated_database(tmp_path_factory.mktemp("db")) as url:
        yield url


# Race tests assert who wins and what the loser is told once the winner has committed, not how
# long the loser may wait: on a loaded 2-core CI machine (a browser or bench test beside them) a
# winner's transaction can outlast the production bound of 2 s, and the loser would be answered
# 503 busy instead. The bound itself is proven by tests/test_pipeline.py on servers of their own.
RACE_LIMITS = Limits(
    busy_timeout_s=20.0, statement_timeout_s=30.0, pool_size=DEFAULT_LIMITS.pool_size
)


@pytest.fixture
def committed_engine(tmp_path: Path) -> Iterator[Engine]:
    """An engine on a database of its own whose commits are real: for tests of concurrent
    transactions, which cannot share the rolled-back test transaction."""
    with _migrated_database(tmp_path) as url:
        engine = make_engine(url, limits=RACE_LIMITS)
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
        if connection.dialect.name == "postgresql":
            # The app's transactions are savepoints inside this one, which spans the whole
            # test: the server's idle-in-transaction bound (app/db.py) would time the test's
            # own pauses (a loaded CI machine), not a request's.
            connection.exec_driver_sql("SET LOCAL idle_in_transaction_session_timeout = 0")
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


class _TestsFactory:
    """The session factory of the running test, for an application shared by the process."""

    factory: SessionFactory | None = None

    def __call__(self) -> Session:
        assert self.factory is not None, "no test is running"
        return self.factory()


AppFor = Callable[[Settings, SessionFactory], FastAPI]


@pytest.fixture(scope="session")
def app_for() -> AppFor:
    """The process's application for these settings, pointed at this test's session factory.

    An application prepares each router's routes on its first request to it (FastAPI builds
    their dependency models then): a new application per test spent a fifth of the suite's
    time on it. The admission limiters belong to one event loop, and each TestClient runs a
    new one, so they are made afresh for each test."""
    apps: dict[str, tuple[FastAPI, _TestsFactory]] = {}

    def get(settings: Settings, session_factory: SessionFactory) -> FastAPI:
        key = settings.model_dump_json()
        if key not in apps:
            current = _TestsFactory()
            apps[key] = (create_app(settings, current), current)
        app, current = apps[key]
        current.factory = session_factory
        app.state.admission = app.state.execution = None
        return app

    return get


@pytest.fixture
def client(
    app_for: AppFor, settings: Settings, session_factory: SessionFactory
) -> Iterator[TestClient]:
    with TestClient(app_for(settings, session_factory)) as client:
        yield client


@pytest.fixture
def api(client: TestClient, db: Session, settings: Settings) -> Api:
    return Api(client, db, settings)


@pytest.fixture
def api_with_skew(
    app_for: AppFor, db: Session, settings: Settings, session_factory: SessionFactory
) -> Iterator[Callable[[int], Api]]:
    """An API driver on an app whose late-entry skew (AUD-6) is the given number of seconds, so
    a test makes a late entry by waiting a moment instead of back-dating rows."""
    with ExitStack() as stack:

        def make(seconds: int) -> Api:
            changed = settings.model_copy(update={"late_entry_skew_s": seconds})
            client = stack.enter_context(TestClient(app_for(changed, session_factory)))
            return Api(client, db, changed)

        yield make
