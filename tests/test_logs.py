"""SEC: no personal data in logs: the access log never shows query strings."""

import logging
import logging.config

from app.logs import RedactQueryStrings, log_config


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
