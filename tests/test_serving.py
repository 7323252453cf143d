"""`homeward serve --workers N`: each worker listens on a socket of its own in the port's
SO_REUSEPORT group, so the kernel spreads connections over the workers (ADR 0035), and a port
something already listens on is refused, never shared."""

import pickle
import socket
import subprocess
import sys
import time
from multiprocessing.reduction import ForkingPickler
from pathlib import Path

import httpx
import pytest

from app import serving
from app.bench.server import running_server

HOMEWARD = [sys.executable, "-c", "from app.cli import main; main()"]
LISTEN = "0A"  # TCP_LISTEN in /proc/net/tcp's state column


def listening_sockets(port: int) -> int:
    """How many sockets listen on 127.0.0.1:`port`, whoever holds them."""
    rows = Path("/proc/net/tcp").read_text().splitlines()[1:]
    local = f"0100007F:{port:04X}"
    return sum(1 for row in rows if row.split()[1] == local and row.split()[3] == LISTEN)


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'served.db'}"
    monkeypatch.setenv("HOMEWARD_DATABASE_URL", url)
    subprocess.run([*HOMEWARD, "db", "upgrade"], check=True, capture_output=True)
    return url


def test_a_pickled_worker_socket_is_a_new_socket_on_the_same_address():
    """What uvicorn's supervisor sends each worker it spawns: not the supervisor's socket
    duplicated (one accept queue for all) but a socket of the worker's own on the address."""
    reserved = serving.reserve(socket.AF_INET, ("127.0.0.1", 0))
    with reserved, ForkingPickler.loads(ForkingPickler.dumps(reserved)) as received:
        assert isinstance(received, serving.WorkerSocket)
        assert received.getsockname() == reserved.getsockname()
        assert received.fileno() != reserved.fileno()
        assert received.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 1
        received.listen()
        with pickle.loads(pickle.dumps(reserved)) as second:
            second.listen()  # a second worker joins the group beside the first
            assert listening_sockets(reserved.getsockname()[1]) == 2


def test_a_port_another_server_listens_on_is_refused_not_shared():
    """Two sockets with SO_REUSEPORT of one user may share a port: a second server started by
    mistake beside a running one would take half its connections. It is refused instead."""
    with socket.socket() as running:
        running.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        running.bind(("127.0.0.1", 0))
        running.listen()
        with pytest.raises(OSError):
            serving.reserve(socket.AF_INET, running.getsockname())


def test_a_second_homeward_on_a_taken_port_exits_with_the_reason(database):
    with socket.socket() as running:
        running.bind(("127.0.0.1", 0))
        running.listen()
        port = running.getsockname()[1]
        done = subprocess.run(
            [*HOMEWARD, "serve", "--port", str(port), "--workers", "2"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 3, done.stderr  # uvicorn's STARTUP_FAILURE
    assert "Address already in use" in done.stderr


@pytest.mark.long
def test_each_of_two_workers_listens_on_its_own_socket_and_answers(database, tmp_path):
    with running_server(database, tmp_path, workers=2) as served:
        port = httpx.URL(served.base_url).port
        # /health answers once one worker is up; the other listens once its application is.
        deadline = time.monotonic() + serving.WORKER_START_TIMEOUT_S
        while listening_sockets(port) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert listening_sockets(port) == 2  # uvicorn alone: one, shared by both workers
        with httpx.Client(base_url=served.base_url) as client:
            assert client.get("/api/v1/health").status_code == 200
    assert listening_sockets(port) == 0


def test_sec_every_access_line_reaches_the_server_log_without_its_query_string(database, tmp_path):
    """Access lines are written in batches (app/logs.py): after the server stops, each request
    of its two workers has its line, and no line shows the query string."""
    with running_server(database, tmp_path, workers=2) as served:
        port = httpx.URL(served.base_url).port
        with httpx.Client(base_url=served.base_url) as client:
            for n in range(20):  # a path of their own: the start-up probes ask for /health
                client.get(f"/api/v1/no-such-page?mrn=MRN-{n:06d}")
    log = (tmp_path / f"server-{port}.log").read_text()
    assert log.count('"GET /api/v1/no-such-page HTTP/1.1" 404') == 20
    assert "MRN-" not in log
