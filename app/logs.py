"""Server logging without personal data (DESIGN §12 SEC): access lines never show query strings,
which may carry an MRN or a name."""

import copy
import logging
from typing import Any

from uvicorn.config import LOGGING_CONFIG


class RedactQueryStrings(logging.Filter):
    """Cut the query string off the path in uvicorn's access log records."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            client, method, path, version, status = args
            record.args = (client, method, path.split("?", 1)[0], version, status)
        return True


def log_config() -> dict[str, Any]:
    """uvicorn's logging configuration with the redaction filter on the access log."""
    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["redact_query"] = {"()": RedactQueryStrings}
    config["handlers"]["access"]["filters"] = ["redact_query"]
    return config
