"""Server logging without personal data (DESIGN §12 SEC): access lines never show query strings,
which may carry an MRN or a name. Access lines are written in batches by a thread of their own
(`BatchedStreamHandler`), not one write per line from the event loop."""

import copy
import logging
import threading
from collections import deque
from typing import Any, TextIO
from weakref import WeakSet

from uvicorn.config import LOGGING_CONFIG

# How long an access line may wait in memory before it is written, and how many may wait.
FLUSH_INTERVAL_S = 0.25
MAX_WAITING = 10_000


class RedactQueryStrings(logging.Filter):
    """Cut the query string off the path in uvicorn's access log records."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            client, method, path, version, status = args
            record.args = (client, method, path.split("?", 1)[0], version, status)
        return True


_batched: WeakSet["BatchedStreamHandler"] = WeakSet()


def flush_batched() -> None:
    """Write every line still waiting in a batched handler: at the application's shutdown, after
    its last request. A uvicorn server ends by raising the signal that stopped it again, so
    neither atexit's `logging.shutdown` nor multiprocessing's finalizers run in a worker."""
    for handler in list(_batched):
        handler.flush()


class BatchedStreamHandler(logging.StreamHandler[TextIO]):
    """A StreamHandler whose records are formatted and written by its own thread, every
    `interval_s` at the latest, all waiting records in one write (and one flush).

    Writing and flushing each access line at once made every request a system call that hands
    the GIL to another thread and back: at 32 clients the scan's server CPU fell from 3.52 to
    3.17 ms batched (2.82 ms with no access log; docs/performance.md, stop 29). A line reaches
    the stream within `interval_s`;
    `flush()`, `close()` and `flush_batched()` write what waits (nothing is lost at shutdown)."""

    def __init__(
        self,
        stream: TextIO | None = None,
        interval_s: float = FLUSH_INTERVAL_S,
        max_waiting: int = MAX_WAITING,
    ) -> None:
        super().__init__(stream)
        self.interval_s, self.max_waiting = interval_s, max_waiting
        self._waiting: deque[logging.LogRecord] = deque()  # appended and taken thread-safely
        self._stopping = threading.Event()
        self._flushing = threading.Lock()
        self._writer = threading.Thread(target=self._run, name="homeward-log", daemon=True)
        self._writer.start()
        _batched.add(self)

    def emit(self, record: logging.LogRecord) -> None:
        self._waiting.append(record)  # atomic under the GIL; formatted by the writer
        if len(self._waiting) >= self.max_waiting:
            # The writer is behind (a stream that blocks): the caller writes and waits, as
            # with one write per line, rather than the lines piling up in memory.
            self.flush()

    def _run(self) -> None:
        while not self._stopping.wait(self.interval_s):
            self.flush()

    def flush(self) -> None:
        # One flush at a time, so a flush at shutdown returns only once the writer's is done;
        # records are not formatted under the handler's lock, which every `emit` takes.
        with self._flushing:
            lines = []
            while self._waiting:
                record = self._waiting.popleft()
                try:
                    lines.append(self.format(record) + self.terminator)
                except Exception:
                    self.handleError(record)
            if lines:
                self.stream.write("".join(lines))
                self.stream.flush()

    def close(self) -> None:
        self._stopping.set()
        self.flush()
        super().close()


def log_config() -> dict[str, Any]:
    """uvicorn's logging configuration with the redaction filter on the access log, whose lines
    are written in batches."""
    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["redact_query"] = {"()": RedactQueryStrings}
    access = config["handlers"]["access"]
    access["filters"] = ["redact_query"]
    access["class"] = f"{__name__}.{BatchedStreamHandler.__name__}"
    return config
