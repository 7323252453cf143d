"""SEC: no personal data in logs: the access log never shows query strings. Access lines are
written in batches by the handler's own thread, and none is lost at shutdown."""

import io
import logging
import logging.config
import time

from app.logs import BatchedStreamHandler, RedactQueryStrings, flush_batched, log_config


def test_sec_access_log_lines_drop_the_query_string():
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", "/api/v1/patients?mrn=MRN-100001", "1.1", 200),
        None,
    )
    assert RedactQueryStrings().filter(record)
    assert record.getMessage() == '127.0.0.1:5000 - "GET /api/v1/patients HTTP/1.1" 200'


def test_sec_the_server_log_configuration_installs_the_filter():
    config = log_config()
    logging.config.dictConfig(config)
    handler_filters = logging.getLogger("uvicorn.access").handlers[0].filters
    assert any(isinstance(f, RedactQueryStrings) for f in handler_filters)


def _access_record(path: str) -> logging.LogRecord:
    return logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "POST", path, "1.1", 200), None,
    )  # fmt: skip


def test_sec_batched_access_lines_wait_in_memory_and_are_all_written_at_close():
    stream = io.StringIO()
    handler = BatchedStreamHandler(stream, interval_s=3600)
    handler.addFilter(RedactQueryStrings())
    for n in range(500):
        handler.handle(_access_record(f"/api/v1/scan/{n}?mrn=MRN-100001"))
    assert stream.getvalue() == ""  # the request's thread wrote nothing
    handler.close()
    lines = stream.getvalue().splitlines()
    assert lines == [f'127.0.0.1:5000 - "POST /api/v1/scan/{n} HTTP/1.1" 200' for n in range(500)]


def test_batched_access_lines_are_written_by_the_handlers_thread_within_its_interval():
    stream = io.StringIO()
    handler = BatchedStreamHandler(stream, interval_s=0.05)
    try:
        handler.handle(_access_record("/api/v1/health"))
        deadline = time.monotonic() + 10
        while not stream.getvalue() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert stream.getvalue() == '127.0.0.1:5000 - "POST /api/v1/health HTTP/1.1" 200\n'
    finally:
        handler.close()


def test_a_writer_that_falls_behind_makes_the_caller_write_rather_than_memory_grow():
    stream = io.StringIO()
    handler = BatchedStreamHandler(stream, interval_s=3600, max_waiting=10)
    try:
        for n in range(25):
            handler.handle(_access_record(f"/api/v1/scan/{n}"))
        assert stream.getvalue().count("\n") == 20  # two batches of 10 written by emit itself
    finally:
        handler.close()
    assert stream.getvalue().count("\n") == 25


def test_flush_batched_writes_what_waits_in_every_batched_handler():
    """What the application's shutdown calls: a uvicorn worker ends past atexit's flush."""
    streams = [io.StringIO(), io.StringIO()]
    handlers = [BatchedStreamHandler(stream, interval_s=3600) for stream in streams]
    try:
        for handler in handlers:
            handler.handle(_access_record("/api/v1/scan"))
        flush_batched()
        assert [s.getvalue() for s in streams] == [
            '127.0.0.1:5000 - "POST /api/v1/scan HTTP/1.1" 200\n'
        ] * 2
    finally:
        for handler in handlers:
            handler.close()
