"""Per test per day rollups (``DailyCaseStat``): runs, failures, time.

Additive: a batch of uploads is counted in memory (``count_daily_stats``)
and added to the stored buckets in one upsert (``save_daily_stats``), in the
transaction that marks the uploads analysed, so each counts exactly once.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime

from flakewatch import db
from flakewatch.analytics.runs import CaseRun
from flakewatch.models import DailyCaseStat

# (case_id, day) -> [runs, failures, skipped, duration_total_ms]
DailyCounts = dict[tuple[int, date], list[float]]
COUNTED = ["runs", "failures", "skipped", "duration_total_ms"]


def count_daily_stats(
    daily: DailyCounts, runs: Mapping[int, CaseRun], when: datetime
) -> None:
    """Add an upload's runs (at ``when``, UTC) to ``daily``, in memory."""
    day = when.date()
    for case_id, run in runs.items():
        counts = daily.get((case_id, day))
        if counts is None:
            counts = daily[(case_id, day)] = [0, 0, 0, 0.0]
        counts[0] += 1
        counts[1] += run.first_failed
        counts[2] += run.skipped_only
        counts[3] += run.duration_ms or 0.0


def save_daily_stats(daily: DailyCounts) -> None:
    """Add the counted buckets to the stored ones.

    The caller owns the transaction and applies each upload once.
    """
    names = ["case_id", "day", *COUNTED]
    db.upsert(
        DailyCaseStat,
        names,
        [(case_id, day, *counts) for (case_id, day), counts in daily.items()],
        key=["case_id", "day"],  # dailycasestat_uniq
        update=db.add_excluded(DailyCaseStat, COUNTED),
    )
