"""The bench's scratch database: created on the server it is given, migrated and loaded with
the demo data, and dropped at the end whatever happens (error, Ctrl-C)."""

import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

import app.models  # noqa: F401  (every table mapped before the demo's first query)
from app.config import Settings
from app.db import OPERATOR_LIMITS, make_engine, session_factory_for
from app.demo import seed
from app.migrate import upgrade

# Logins happen once per run; the demo's passwords are hashed this cheaply so that loading the
# demo data takes a fraction of a second. The servers get the same cost so no login rehashes.
ARGON2_ENV = {"HOMEWARD_ARGON2_TIME_COST": "1", "HOMEWARD_ARGON2_MEMORY_KIB": "8192"}


@contextmanager
def scratch_database(server_url: str | None) -> Iterator[str]:
    """The URL of a new, empty database on `server_url` (PostgreSQL), dropped on exit; without a
    server, a SQLite file in a temporary directory."""
    if server_url is None:
        with tempfile.TemporaryDirectory() as directory:
            yield f"sqlite:///{Path(directory) / 'bench.db'}"
        return
    server = make_url(server_url)
    name = f"homeward_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def libpq(url: str) -> str:
    """A SQLAlchemy PostgreSQL URL as a libpq connection URI, for the raw driver."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def bench_settings(url: str) -> Settings:
    """The settings the demo data is loaded with (cheap password hashes, see ARGON2_ENV)."""
    return Settings(
        database_url=url,
        argon2_time_cost=int(ARGON2_ENV["HOMEWARD_ARGON2_TIME_COST"]),
        argon2_memory_kib=int(ARGON2_ENV["HOMEWARD_ARGON2_MEMORY_KIB"]),
    )


def load_demo(url: str) -> None:
    """Bring the database to the newest schema and load the demo users and patients."""
    upgrade(url)
    engine = make_engine(url, limits=OPERATOR_LIMITS)
    try:
        seed(session_factory_for(engine), bench_settings(url))
    finally:
        engine.dispose()
