"""Outcome and verdict codes shared by the parser, the analytics and the models.

Pure enums, no Django: ``ingest.parsing`` and ``flakewatch.analytics`` use
them without a database, and the models build their ``choices`` from them.
"""

from enum import IntEnum, StrEnum


class Outcome(IntEnum):
    """How one execution of a test ended (stored as its integer)."""

    PASSED = 0
    FAILED = 1
    ERROR = 2
    SKIPPED = 3

    @property
    def is_failure(self) -> bool:
        """Return whether the execution failed (a failure or an error)."""
        return self in (Outcome.FAILED, Outcome.ERROR)


class Status(StrEnum):
    """A test's verdict (stored as its text)."""

    NEW = "new"
    HEALTHY = "healthy"
    FLAKY = "flaky"
    BROKEN = "broken"
    FIXED = "fixed"
    QUARANTINED = "quarantined"


# The verdicts in display order, as the API's filter and summary list them.
VERDICTS: tuple[str, ...] = tuple(status.value for status in Status)
