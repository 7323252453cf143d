"""`homeward serve`: uvicorn, its worker processes each listening on a socket of its own.

uvicorn's supervisor binds one socket and hands it to every worker: they share one accept queue,
and uvloop accepts every connection waiting when its loop wakes. 32 keep-alive clients arriving
together split 4 / 28 or 21 / 11 between two workers (measured, docs/performance.md, stop 25),
and the clients of the fuller worker wait twice as long or more while the other idles. Here each
worker opens its own listening socket with SO_REUSEPORT, and the kernel spreads new connections
over the workers' sockets by a hash of their addresses (ADR 0035). A worker starting, or
restarted, receives connections only once it listens, i.e. once its application is up.
"""

import asyncio
import logging
import socket
import sys
from typing import Any

import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.supervisors import Multiprocess

from app.logs import log_config

APP = "app.main:serving_app"
# A worker answers the supervisor's health check only once Python and its imports are up; on a
# busy 2-core machine that took longer than uvicorn's default 5 s, and the supervisor then killed
# and respawned every worker for good.
WORKER_START_TIMEOUT_S = 60

logger = logging.getLogger("uvicorn.error")


class NoDelayHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools HTTP/1.1 protocol with Nagle's algorithm off on every connection.

    httptools (C, llhttp) and uvloop rather than h11 and asyncio's loop: measured in ADR 0014.

    asyncio turns it off only for sockets it recognises as TCP; the listening socket uvicorn
    hands to its worker processes is not, so with `--workers 2` every keep-alive answer waited
    for the client's delayed ACK: 44 ms per request (measured), whatever the request.
    """

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)


def reserve(family: int, address: tuple[Any, ...]) -> "WorkerSocket":
    """The serving address bound for the workers; OSError when anything else listens on it.

    A socket with SO_REUSEPORT may join the group of another process of the same user that
    listens on the port: a second Homeward started by mistake beside a running one would then
    take half its connections, silently. A socket without the option is refused while any other
    socket listens there, so one binds first, alone, and lets go.
    """
    with socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP) as alone:
        alone.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past TIME_WAIT only
        alone.bind(address)
        address = alone.getsockname()
    return port_socket(family, address)


def port_socket(family: int, address: tuple[Any, ...]) -> "WorkerSocket":
    """A TCP socket bound to `address` with SO_REUSEPORT, not listening yet."""
    sock = WorkerSocket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(address)
    sock.set_inheritable(True)
    return sock


class WorkerSocket(socket.socket):
    """The serving address, which each worker process opens for itself.

    The supervisor binds one (never listening: it only holds the port and fails early when the
    port is taken) and gives it to uvicorn, which pickles it to every worker it starts. Pickled,
    it is not the same socket duplicated but a new one bound to the same address: each worker
    listens on a socket of its own in the port's SO_REUSEPORT group.
    """

    def __reduce__(self) -> tuple[Any, ...]:
        return port_socket, (self.family, self.getsockname())

    def __reduce_ex__(self, protocol: Any) -> tuple[Any, ...]:
        return self.__reduce__()


def serve(host: str, port: int, workers: int) -> None:
    """Serve the application on `host:port` with `workers` processes (1: no supervisor)."""
    config = uvicorn.Config(
        APP,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        http=NoDelayHttpToolsProtocol,
        loop="uvloop",
        timeout_worker_healthcheck=WORKER_START_TIMEOUT_S,
        log_config=log_config(),
    )
    if workers == 1:
        server = uvicorn.Server(config)
        server.run()
        if not server.started:
            sys.exit(STARTUP_FAILURE)  # as uvicorn.run exits
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        reserved = reserve(family, (host, port))
    except OSError as exc:
        logger.error(exc)
        sys.exit(STARTUP_FAILURE)
    logger.info("Uvicorn running on http://%s:%d with %d workers", host, port, workers)
    Multiprocess(config, sockets=[reserved]).run()
