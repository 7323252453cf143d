"""A real Homeward server on a free loopback port, in a thread, for tests of concurrent clients.

TestClient runs requests one at a time through a portal; the hang and lock problems of many
clients at once only show through a real server with its own event loop and thread pool.
"""

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from sqlalchemy import Engine

from app.config import Settings
from app.main import create_app


@contextmanager
def running_server(engine: Engine, settings: Settings, **overrides: object) -> Iterator[str]:
    """The base URL of a server on `engine`'s database; stopped (and its pool closed) at exit."""
    url = engine.url.render_as_string(hide_password=False)
    app = create_app(settings.model_copy(update={"database_url": url, **overrides}))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        for _ in range(500):
            if server.started:
                break
            threading.Event().wait(0.01)
        assert server.started, "the test server did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
