"""Alembic environment: targets app.models' metadata; the URL comes from Homeward's settings."""

import subprocess
import sys
import tempfile
from logging.config import fileConfig
from pathlib import Path

from alembic import context
from sqlalchemy import Connection

from app.config import get_settings
from app.db import make_engine
from app.models import metadata

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logging", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def _run(connection: Connection) -> None:
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        # SQLite alters a table by copying it ("batch" mode); with foreign keys on, dropping the
        # old copy would fail or cascade. The pragma only works outside a transaction, hence the
        # raw driver connection (in autocommit until SQLAlchemy begins). Checked again below.
        connection.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")
    context.configure(
        connection=connection,
        target_metadata=metadata,
        compare_type=True,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
        if sqlite:
            broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise RuntimeError(f"migration left broken foreign keys: {broken[:5]}")
    if sqlite:
        connection.connection.driver_connection.execute("PRAGMA foreign_keys=ON")


def _cli_command() -> str | None:
    """The alembic command typed on the command line (None when called from code)."""
    cmd = getattr(config.cmd_opts, "cmd", None)
    return cmd[0].__name__ if cmd else None


def _run_on(url: str) -> None:
    engine = make_engine(url, pool=False)
    with engine.connect() as connection:
        _run(connection)
    engine.dispose()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = config.attributes.get("database_url") or get_settings().database_url
    if (
        _cli_command() == "check"
        and "database_url" not in config.attributes
        and url.startswith("sqlite")
    ):
        # `alembic check` compares the models with the migrations: on the embedded default it
        # does so on a scratch database brought to head, whatever state ./homeward.db is in.
        with tempfile.TemporaryDirectory() as directory:
            scratch = f"sqlite:///{Path(directory) / 'alembic-check.db'}"
            # In a process of its own: alembic's context cannot nest inside this one.
            code = "import sys; from app.migrate import upgrade; upgrade(sys.argv[1])"
            subprocess.run([sys.executable, "-c", code, scratch], check=True)
            _run_on(scratch)
        return
    _run_on(url)


if context.is_offline_mode():
    raise SystemExit("Homeward migrations run online only (triggers differ per database).")
run_migrations_online()
