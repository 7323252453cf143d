"""`homeward`: the operators' command line."""

import json
import signal
import sys
import time
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from pydantic import ValidationError
from sqlalchemy.engine import make_url

import app.models  # noqa: F401  (every table mapped before the first query)
from app import serving
from app.audit import checkpoint as checkpoints
from app.audit.service import verify_trail
from app.auth import service as auth
from app.auth.schemas import UserCreate
from app.bench import report
from app.bench.load import generators
from app.bench.run import run as run_bench
from app.config import get_settings
from app.db import OPERATOR_LIMITS, SessionFactory, make_engine, session_factory_for, unit_of_work
from app.demo import seed
from app.errors import HomewardError
from app.migrate import upgrade
from app.validation.run import run as run_validation

cli = typer.Typer(
    help="Homeward: chain-of-identity LIS for autologous cell therapy.", no_args_is_help=True
)
db_cli = typer.Typer(help="Database schema.", no_args_is_help=True)
users_cli = typer.Typer(help="User accounts.", no_args_is_help=True)
audit_cli = typer.Typer(help="Audit trail.", no_args_is_help=True)
cli.add_typer(db_cli, name="db")
cli.add_typer(users_cli, name="users")
cli.add_typer(audit_cli, name="audit")


def _factory() -> SessionFactory:
    return session_factory_for(make_engine(get_settings().database_url, limits=OPERATOR_LIMITS))


@db_cli.command("upgrade")
def db_upgrade() -> None:
    """Bring the database to the newest schema (alembic upgrade head)."""
    upgrade(get_settings().database_url)
    typer.echo("database is at the newest schema")


@users_cli.command("create")
def users_create(
    username: str,
    role: Annotated[list[str], typer.Option("--role", help="technician, qa, clinician or admin")],
    full_name: Annotated[str, typer.Option("--full-name")],
    password_stdin: Annotated[bool, typer.Option("--password-stdin")] = False,
    force_change: Annotated[
        bool,
        typer.Option(
            "--force-change/--no-force-change",
            help="the user must choose their own password at first sign-in (default: yes)",
        ),
    ] = True,
) -> None:
    """Create a user; the password is read from standard input, never from the command line.
    The operator typed it, so by default the user must change it at first sign-in (ADR 0021)."""
    if not password_stdin:
        raise typer.BadParameter("pass the password on standard input with --password-stdin")
    password = sys.stdin.readline().rstrip("\r\n")
    try:
        data = UserCreate(username=username, full_name=full_name, password=password, roles=role)
    except ValidationError as exc:
        problem = exc.errors()[0]
        typer.echo(f"error: {problem['loc'][0]}: {problem['msg']}", err=True)
        raise typer.Exit(2) from exc
    try:
        with unit_of_work(_factory()) as session:
            user = auth.create_user(
                session,
                get_settings(),
                actor="cli",
                must_change_password=force_change,
                **data.model_dump(),
            )
            typer.echo(f"created user {user.username} (id {user.id}): {', '.join(data.roles)}")
    except HomewardError as exc:
        typer.echo(f"error: {exc.detail}", err=True)
        raise typer.Exit(1) from exc


@cli.command("demo")
def demo() -> None:
    """Load demo users and patients (idempotent) and print the demo logins."""
    users = seed(_factory(), get_settings())
    typer.echo("Demo logins (DEMO ONLY - never on a production database):")
    for user in users:
        typer.echo(f"  {user.username:<10} {user.password:<22} {', '.join(user.roles)}")


@cli.command("serve")
def serve(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8000,
    workers: Annotated[int, typer.Option(min=1)] = 1,
) -> None:
    """Run the web server."""
    serving.serve(host, port, workers)


@audit_cli.command("verify")
def audit_verify(
    checkpoint_file: Annotated[
        Path | None,
        typer.Option("--checkpoint", help="Also check the trail still holds this checkpoint"),
    ] = None,
) -> None:
    """Re-hash the whole audit trail, check each chain ends at its head and every tracked record
    is in its last recorded state; exit 1 naming the first broken event, chain or record."""
    document = _read_checkpoint(checkpoint_file) if checkpoint_file else None
    with _factory()() as session:
        result = verify_trail(session)
        held = None
        if result.ok and document is not None:
            try:
                held = checkpoints.check(session, document, get_settings().checkpoint_key)
            except checkpoints.CheckpointError as exc:
                typer.echo(f"error: {exc}", err=True)
                raise typer.Exit(2) from exc
    if not result.ok:
        _broken(result.chain.first_bad_seq, result.detail, result.chain.events_checked)
    if held is not None and not held.ok:
        _broken(None, held.detail or "", held.events_checked)
    assert result.records is not None
    typer.echo(
        f"audit trail intact: {result.chain.events_checked} events checked, "
        f"{len(result.chain.tails)} chains at their heads, "
        f"{result.records.records_checked} records as last recorded"
        + (f", checkpoint {checkpoint_file} held" if held is not None else "")
    )


def _broken(seq: int | None, detail: str, events_read: int) -> NoReturn:
    where = f"at event seq {seq} " if seq is not None else ""
    typer.echo(f"AUDIT TRAIL BROKEN {where}({events_read} events read): {detail}", err=True)
    raise typer.Exit(1)


def _read_checkpoint(path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        typer.echo(f"error: cannot read the checkpoint {path}: {exc}", err=True)
        raise typer.Exit(2) from exc


@audit_cli.command("checkpoint")
def audit_checkpoint(
    out: Annotated[Path | None, typer.Option("--out", help="Write it here, not to stdout")] = None,
) -> None:
    """Verify the chains and export their heads, signed with HOMEWARD_CHECKPOINT_KEY: keep the
    file outside the database and check it later with `audit verify --checkpoint FILE`."""
    try:
        with _factory()() as session:
            result, document = checkpoints.make(session, get_settings().checkpoint_key)
    except checkpoints.CheckpointError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    if document is None:
        _broken(
            result.first_bad_seq, result.detail or "an event was changed", result.events_checked
        )
    text = json.dumps(document, indent=2, sort_keys=True) + "\n"
    if out is None:
        typer.echo(text, nl=False)
        return
    out.write_text(text, encoding="utf-8")
    typer.echo(f"checkpoint of {len(document['scopes'])} chains written to {out}", err=True)


def _interrupted(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


@cli.command("bench")
def bench(
    server: Annotated[
        str,
        typer.Option(help="PostgreSQL server URL; a scratch database is made on it and dropped"),
    ],
    json_output: Annotated[bool, typer.Option("--json", help="Print the figures as JSON")] = False,
    quick: Annotated[bool, typer.Option("--quick", help="Short runs, smaller data (~1 min)")] = (
        False
    ),
    generator: Annotated[str, typer.Option(help="Load generator: auto, wrk or httpx")] = "auto",
) -> None:
    """Measure the PERF bars of DESIGN §12 (scan under load, ceiling, labels, audit, board)."""
    if make_url(server).get_backend_name() != "postgresql":
        raise typer.BadParameter("the bench runs on a PostgreSQL server", param_hint="--server")
    usable = generators()
    if generator not in ("auto", *usable):
        raise typer.BadParameter(f"use one of: auto, {', '.join(usable)}", param_hint="--generator")
    began = time.monotonic()

    def progress(step: str) -> None:
        typer.echo(f"[{time.monotonic() - began:6.1f} s] {step}", err=True)

    # A terminated or interrupted run still stops its servers and drops its database: both
    # signals unwind through the clean-up (a shell starts background jobs with SIGINT ignored).
    for stop in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop, _interrupted)
    chosen = usable[0] if generator == "auto" else generator
    figures = run_bench(server, quick=quick, generator=chosen, progress=progress)
    progress("done")
    shown = json.dumps(report.with_bars(figures), indent=2) if json_output else None
    typer.echo(shown or report.table(figures))


@cli.command("validate")
def validate(
    url: Annotated[str, typer.Option(help="Base URL of the live install, e.g. https://lis.site")],
    admin: Annotated[str, typer.Option(help="An admin account of the install")],
    out: Annotated[Path, typer.Option(help="Directory the report is written to")] = Path(
        "validation-report"
    ),
    password_stdin: Annotated[bool, typer.Option("--password-stdin")] = False,
) -> None:
    """Operational qualification of a live install (VAL-1): walk every requirement through the
    public API on scratch records, write report.json/.html/.pdf and SHA256SUMS to --out; exit 0
    when every requirement walked passed, 1 when one did not, 2 when a precondition failed."""
    if not password_stdin:
        raise typer.BadParameter(
            "pass the admin's password on standard input with --password-stdin"
        )
    password = sys.stdin.readline().rstrip("\r\n")
    report = run_validation(url, admin, password, progress=lambda step: typer.echo(step, err=True))
    files = report.write(out)
    content = report.content
    typer.echo(f"verdict: {content['verdict'].upper()}")
    if content["precondition"]:
        typer.echo(f"precondition failed: {content['precondition']}")
    typer.echo(", ".join(f"{n} {key}" for key, n in content["summary"].items()))
    for outcome in content["checks"]:
        if outcome["status"] != "pass":
            typer.echo(f"  {outcome['requirement']}: {outcome['status']} {outcome['note'] or ''}")
    typer.echo(f"report: {files['report.pdf']} and {files['report.html']}")
    typer.echo(f"sha256 (QA signs this in Homeward): {report.sha256}")
    if content["verdict"] != "pass":
        raise typer.Exit(2 if content["precondition"] else 1)


def main() -> None:
    cli()
