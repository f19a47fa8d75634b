"""Outcome codes shared by the parser (no Django) and the models."""

from enum import IntEnum


class Outcome(IntEnum):
    PASSED = 0
    FAILED = 1
    ERROR = 2
    SKIPPED = 3

    @property
    def is_failure(self) -> bool:
        return self in (Outcome.FAILED, Outcome.ERROR)
