"""Log records as JSON lines, each carrying the upload it is about.

``upload_context(upload_id)`` binds an upload to everything the current task
(or thread) logs; ``UploadContextFilter`` copies it onto every record, so a
line written deep in the analytics names its upload without each call saying
so. ``JsonFormatter`` writes one JSON object per line
(FLAKEWATCH_LOG_FORMAT=json). Imports nothing from Django: the logging
configuration loads this module while settings are being set up.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime

UPLOAD_ID: ContextVar[int | None] = ContextVar("upload_id", default=None)

# The attributes every LogRecord has; anything else came from ``extra=``.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


@contextmanager
def upload_context(upload_id: int) -> Iterator[None]:
    """Tag every record logged inside the block with ``upload_id``."""
    token = UPLOAD_ID.set(upload_id)
    try:
        yield
    finally:
        UPLOAD_ID.reset(token)


def bind_upload(upload_id: int | None) -> object:
    """Tag later records with ``upload_id``; return the token to unbind it."""
    return UPLOAD_ID.set(upload_id)


def unbind_upload(token: object) -> None:
    """Undo the ``bind_upload`` that returned ``token``."""
    UPLOAD_ID.reset(token)  # type: ignore[arg-type]


class UploadContextFilter(logging.Filter):
    """Set ``record.upload_id`` from the context unless the call passed one."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Add the bound upload id to ``record``; never drop a record."""
        if getattr(record, "upload_id", None) is None:
            record.upload_id = UPLOAD_ID.get()
        return True


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON object on one line."""

    def format(self, record: logging.LogRecord) -> str:
        """Return the record as JSON: time, level, logger, message, extras."""
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "upload_id": getattr(record, "upload_id", None),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        # default=str: an extra that JSON cannot hold is written as its text.
        return json.dumps(entry, default=str, ensure_ascii=False)
