"""Label printers for tests: real TCP listeners on 127.0.0.1 that keep what each connection sent
(one job each), and can be busy (they let no connection in until released)."""

import queue
import socket
import threading
import time
from collections.abc import Callable


def _syn_sent_to(port: int) -> bool:
    """Whether a local socket is trying to connect to `port` (SYN_SENT in /proc/net/tcp)."""
    with open("/proc/net/tcp") as table:
        rows = [line.split() for line in table.read().splitlines()[1:]]
    return any(int(row[2].split(":")[1], 16) == port and row[3] == "02" for row in rows)


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Poll `condition` until it holds; fail the test (never hang) after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.02)


class FakeZebra:
    """A raw TCP printer port. A busy one listens with a full accept queue (one connection that
    is never served), so the kernel drops new connection attempts until `release()`."""

    def __init__(self, *, busy: bool = False) -> None:
        self.server = socket.create_server(("127.0.0.1", 0), backlog=0 if busy else 8)
        self.server.settimeout(0.1)
        self.port = self.server.getsockname()[1]
        self.received: queue.Queue[bytes] = queue.Queue()
        self._released = threading.Event()
        self._filler = socket.create_connection(("127.0.0.1", self.port), 1) if busy else None
        if not busy:
            self._released.set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            if not self._released.wait(0.05):
                continue
            try:
                conn, _ = self.server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(5)
                chunks = []
                while chunk := conn.recv(65536):
                    chunks.append(chunk)
            if chunks:  # the busy printer's filler connection sends nothing
                self.received.put(b"".join(chunks))

    def someone_is_connecting(self) -> bool:
        """A sender is waiting for this (busy) printer to let its connection in."""
        return _syn_sent_to(self.port)

    def release(self) -> None:
        """Let connections in: the next retransmitted connection attempt gets through."""
        if self._filler is not None:
            self._filler.close()
        self._released.set()

    def job(self, timeout: float = 10.0) -> str:
        """The next job received (waits for the sender to close the connection)."""
        return self.received.get(timeout=timeout).decode("utf-8")

    def close(self) -> None:
        self.release()
        self._stop.set()
        self._thread.join(timeout=5)
        self.server.close()


def dead_port() -> int:
    """A local port with nothing listening (bound once, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
