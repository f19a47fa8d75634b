"""Duration figures and regressions, folded one run at a time.

A series (a test's or a suite's durations in run order) is kept as a small
state: the newest RECENT_SIZE points and a baseline, the geometric mean of the
points that aged out (an exponentially weighted mean of log durations).
Regression: the median of the newest RECENT_CHECK runs is at least
REGRESSION_RATIO times the baseline and CONSISTENT_MIN of them are at least
CONSISTENT_RATIO times it: markedly and consistently slower, never one slow
run. While regressed the baseline is frozen (the slowdown does not become the
new normal) until ACCEPT_AFTER_RUNS runs later, when it does.

Folding point by point in run order makes a full recompute replay exactly
what the incremental path did. The state is one flat JSON list, cheap to load
and store for every test of every upload:
``[baseline_log, baseline_points, regressed_since_upload, regressed_runs,
upload_1, ms_1, upload_2, ms_2, ...]`` (oldest point first).
"""

from __future__ import annotations

import math
from typing import Any

RECENT_SIZE = 20
RECENT_CHECK = 10
CONSISTENT_MIN = 8
REGRESSION_RATIO = 1.5
CONSISTENT_RATIO = 1.25
MIN_DELTA_MS = 1.0  # sub-millisecond tests jitter by more than 50%
BASELINE_WEIGHT = 0.05
BASELINE_MIN_POINTS = 10
ACCEPT_AFTER_RUNS = 2000  # a slowdown stays flagged for a long while, not forever
HEADER = 4  # baseline_log, baseline_points, regressed_since_upload, regressed_runs

# The flat JSON list above: floats, ints and None by position, so Any.
Series = list[Any]


def new_series() -> Series:
    """Return the state of a series with no points yet."""
    return [0.0, 0, None, 0]


def add_point(series: Series, upload_id: int, duration_ms: float) -> Series:
    """Fold one run into ``series`` (in place) and return it."""
    if len(series) < HEADER:
        series[:] = new_series()
    series += (upload_id, duration_ms)
    if len(series) > HEADER + 2 * RECENT_SIZE:
        aged_ms = series[HEADER + 1]
        del series[HEADER : HEADER + 2]
        if series[2] is None:  # the baseline is frozen while regressed
            log_ms = math.log(max(aged_ms, 1e-3))
            series[0] = (
                log_ms
                if series[1] == 0
                else series[0] + BASELINE_WEIGHT * (log_ms - series[0])
            )
            series[1] += 1
    _judge(series)
    return series


def durations(series: Series) -> list[float]:
    """Return the series' recent durations in ms, oldest first."""
    return series[HEADER + 1 :: 2]


def regressed_since(series: Series) -> int | None:
    """Return the upload where the current regression started, if any."""
    return series[2] if len(series) >= HEADER else None


def percentiles(series: Series) -> tuple[float | None, float | None]:
    """Return (p50, p95) of the recent runs, in ms."""
    values = sorted(durations(series))
    if not values:
        return None, None
    return _quantile(values, 0.5), _quantile(values, 0.95)


def _reference_ms(series: Series, values: list[float]) -> float | None:
    """Return the 'before' duration that regressions are measured against."""
    if series[1] >= BASELINE_MIN_POINTS:
        return math.exp(series[0])
    older = values[:-RECENT_CHECK]
    if len(older) >= BASELINE_MIN_POINTS // 2:
        return _quantile(sorted(older), 0.5)
    return None


def _judge(series: Series) -> None:
    values = durations(series)
    if len(values) < RECENT_CHECK:
        return
    reference = _reference_ms(series, values)
    if reference is None:
        return
    newest = values[-RECENT_CHECK:]
    median = _quantile(sorted(newest), 0.5)
    slow = reference * CONSISTENT_RATIO
    regressed = (
        median >= reference * REGRESSION_RATIO
        and median - reference >= MIN_DELTA_MS
        and sum(ms >= slow for ms in newest) >= CONSISTENT_MIN
    )
    if regressed and series[2] is None:
        # Locate the step at the geometric middle of the before and after levels.
        middle = math.sqrt(reference * median)
        series[2], series[3] = int(series[HEADER::2][_step_index(values, middle)]), 0
    elif regressed:
        series[3] += 1
        if series[3] >= ACCEPT_AFTER_RUNS:  # the slowdown is the new normal
            series[0] = math.log(max(_quantile(sorted(values), 0.5), 1e-3))
            series[1] = max(series[1], BASELINE_MIN_POINTS)
            series[2], series[3] = None, 0
    elif series[2] is not None:
        series[2], series[3] = None, 0


def _step_index(values: list[float], threshold: float) -> int:
    """Return where a fast-then-slow step fits best.

    That is the split with the fewest slow runs before it plus fast runs from
    it on.
    """
    is_slow = [ms >= threshold for ms in values]
    misfits = sum(not s for s in is_slow)  # split at 0: every fast run misfits
    best, best_index = misfits, 0
    for index, slow_run in enumerate(is_slow[:-1], start=1):
        misfits += 1 if slow_run else -1
        if misfits <= best:  # on a tie the later split: the step is surely there
            best, best_index = misfits, index
    return best_index


def _quantile(ordered: list[float], q: float) -> float:
    """Linear-interpolated quantile of an ascending list."""
    position = (len(ordered) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)
