"""A real Homeward server for the bench: `homeward serve` in a subprocess on a free 127.0.0.1 port,
over the scratch database, stopped (with its workers) at the end whatever happens."""

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, NamedTuple

import httpx

from app.bench.database import ARGON2_ENV

API = "/api/v1"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 5.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _signal_group(process: subprocess.Popen[bytes], sent: signal.Signals) -> None:
    with suppress(ProcessLookupError):  # the whole group has exited already
        os.killpg(process.pid, sent)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop the server's process group: uvicorn's supervisor and every worker."""
    _signal_group(process, signal.SIGTERM)
    with suppress(subprocess.TimeoutExpired):
        process.wait(timeout=STOP_TIMEOUT_S)
    # A worker may outlive its supervisor (or the supervisor may hang): nothing of it survives.
    _signal_group(process, signal.SIGKILL)
    process.wait(timeout=STOP_TIMEOUT_S)


def wait_answering(
    client: httpx.Client, timeout_s: float, process: subprocess.Popen[bytes] | None = None
) -> float:
    """Seconds until GET /health answers 200; RuntimeError past `timeout_s` or if `process`
    (the server) exits first."""
    began = time.monotonic()
    while time.monotonic() - began < timeout_s:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the bench server exited with status {process.returncode}")
        try:
            if client.get(f"{API}/health", timeout=2.0).status_code == 200:
                return time.monotonic() - began
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the bench server did not answer /health within {timeout_s:.0f} s")


class Served(NamedTuple):
    base_url: str
    session_id: int  # the server's process session: its supervisor and workers (app.bench.cpu)


@contextmanager
def running_server(
    database_url: str, workdir: Path, *, workers: int = 2, env: dict[str, str] | None = None
) -> Iterator[Served]:
    """`homeward serve --workers N` on `database_url`, healthy, until exit."""
    port = free_port()
    log = workdir / f"server-{port}.log"
    environment = os.environ | ARGON2_ENV | {"HOMEWARD_DATABASE_URL": database_url} | (env or {})
    command = [sys.executable, "-c", "from app.cli import main; main()", "serve"]
    with log.open("wb") as output:
        process = subprocess.Popen(
            [*command, "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)],
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped as one, deaf to our Ctrl-C
        )
        try:
            base_url = f"http://127.0.0.1:{port}"
            with httpx.Client(base_url=base_url) as client:
                try:
                    wait_answering(client, START_TIMEOUT_S, process)
                except RuntimeError as exc:
                    tail = log.read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"{exc}; its log ends with:\n{tail}") from exc
            yield Served(base_url, process.pid)
        finally:
            _stop(process)


def token(client: httpx.Client, username: str, password: str) -> str:
    """A bearer token for a demo user."""
    answer = client.post(f"{API}/auth/token", data={"username": username, "password": password})
    answer.raise_for_status()
    return answer.json()["access_token"]


def get(client: httpx.Client, path: str, bearer: str) -> httpx.Response:
    """GET `path` under the API as the holder of `bearer`; any answer but 200 is an error."""
    answer = client.get(f"{API}{path}", headers={"Authorization": f"Bearer {bearer}"})
    answer.raise_for_status()
    return answer


def get_json(client: httpx.Client, path: str, bearer: str) -> Any:
    return get(client, path, bearer).json()


def scan_bodies(client: httpx.Client, bearer: str) -> list[dict[str, Any]]:
    """One correct scan request per vessel of every batch: its code, expecting its batch."""
    return [
        {"code": vessel["code"], "expect": {"batch_id": batch["id"]}}
        for batch in get_json(client, "/batches", bearer)
        for vessel in get_json(client, f"/batches/{batch['id']}", bearer)["vessels"]
    ]
