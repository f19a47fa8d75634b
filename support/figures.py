"""Summary figures of measured timings, and the machine's load."""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from pathlib import Path


def percentile(ordered: list[float], pct: float) -> float | None:
    """Return the nearest-rank percentile of an ascending list, None if empty."""
    if not ordered:
        return None
    rank = max(1, -(-len(ordered) * pct // 100))  # ceil
    return ordered[int(rank) - 1]


def median(values: Iterable[float | None]) -> float | None:
    """Return the median of the values that are not None, None if there are none."""
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def loadavg() -> str:
    """Return the 1, 5 and 15 minute load averages, or "n/a" off Linux."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"
