"""Duration figures and regressions, folded one run at a time.

A series (a test's or a suite's durations in run order) is kept as a small
state: the newest RECENT_SIZE points and a baseline, the geometric mean of the
points that aged out (an exponentially weighted mean of log durations).
Regression: the median of the newest RECENT_CHECK runs is at least
REGRESSION_RATIO times the baseline and CONSISTENT_MIN of them are at least
CONSISTENT_RATIO times it: markedly and consistently slower, never one slow
run. The slowdown must also be material and measurable: the median must
exceed the baseline by ``min_regression_ms`` (FLAKEWATCH_MIN_REGRESSION_MS,
default 50 ms a run) and by RESOLUTION_STEPS ticks of the timer (go test
reports centiseconds: a test at 0.00 s and 0.01 s is one tick, not a
slowdown), with every time floored at half a tick (a 0.00 s run is not
1 µs). A test whose runs are mostly failures has no baseline: while the
share of failed runs (an exponentially weighted mean, FAILED_WEIGHT) is
MAX_FAILED_SHARE or more, nothing is judged. While regressed the baseline
is frozen (the slowdown does not become the new normal) until
ACCEPT_AFTER_RUNS runs later, when it does.

Folding point by point in run order makes a full recompute replay exactly
what the incremental path did. The state is one flat JSON list, cheap to load
and store for every test of every upload:
``[baseline_log, baseline_points, regressed_since_upload, regressed_runs,
failed_share, upload_1, ms_1, upload_2, ms_2, ...]`` (oldest point first).
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
DEFAULT_MIN_REGRESSION_MS = 50.0
RESOLUTION_STEPS = 2
# Timers in use: centiseconds (go test), milliseconds (most runners).
COARSE_TICK_MS, FINE_TICK_MS = 10.0, 1.0
FAILED_WEIGHT = 0.1
MAX_FAILED_SHARE = 0.5
BASELINE_WEIGHT = 0.05
BASELINE_MIN_POINTS = 10
ACCEPT_AFTER_RUNS = 2000  # a slowdown stays flagged for a long while, not forever
# baseline_log, baseline_points, regressed_since_upload, regressed_runs,
# failed_share
HEADER = 5

# The flat JSON list above: floats, ints and None by position, so Any.
Series = list[Any]


def new_series() -> Series:
    """Return an empty series."""
    return [0.0, 0, None, 0, 0.0]


def add_run(series: Series, *, failed: bool) -> Series:
    """Count one run of the test, failed or not, into its failed share.

    Called for every run, before ``add_point`` for a passing one; in place.
    """
    if len(series) < HEADER:
        series[:] = new_series()
    series[4] += FAILED_WEIGHT * (float(failed) - series[4])
    return series


def add_point(
    series: Series,
    upload_id: int,
    duration_ms: float,
    *,
    min_regression_ms: float = DEFAULT_MIN_REGRESSION_MS,
) -> Series:
    """Fold one passing run's time into ``series`` (in place), return it."""
    if len(series) < HEADER:
        series[:] = new_series()
    series += (upload_id, duration_ms)
    if len(series) > HEADER + 2 * RECENT_SIZE:
        aged_ms = series[HEADER + 1]
        del series[HEADER : HEADER + 2]
        if series[2] is None:  # the baseline is frozen while regressed
            log_ms = math.log(max(aged_ms, _tick(durations(series)) / 2))
            series[0] = (
                log_ms
                if series[1] == 0
                else series[0] + BASELINE_WEIGHT * (log_ms - series[0])
            )
            series[1] += 1
    _judge(series, min_regression_ms)
    return series


def _tick(values: list[float]) -> float:
    """Return the timer's resolution, in ms, as the values show it."""
    coarse = all(
        abs(ms / COARSE_TICK_MS - round(ms / COARSE_TICK_MS)) < 1e-6 for ms in values
    )
    return COARSE_TICK_MS if coarse else FINE_TICK_MS


def durations(series: Series) -> list[float]:
    """Return the series' recent times, oldest first, in ms."""
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


def _reference_ms(series: Series, values: list[float], tick: float) -> float | None:
    """Return the 'before' duration that regressions are measured against."""
    if series[1] >= BASELINE_MIN_POINTS:
        return max(math.exp(series[0]), tick / 2)
    older = values[:-RECENT_CHECK]
    if len(older) >= BASELINE_MIN_POINTS // 2:
        return max(_quantile(sorted(older), 0.5), tick / 2)
    return None


def _judge(series: Series, min_regression_ms: float) -> None:
    values = durations(series)
    if len(values) < RECENT_CHECK:
        return
    if series[4] >= MAX_FAILED_SHARE and series[2] is None:
        return  # mostly failing: its few passes are no baseline
    tick = _tick(values)
    reference = _reference_ms(series, values, tick)
    if reference is None:
        return
    newest = values[-RECENT_CHECK:]
    median = _quantile(sorted(newest), 0.5)
    slow = reference * CONSISTENT_RATIO
    regressed = (
        median >= reference * REGRESSION_RATIO
        and median - reference >= max(MIN_DELTA_MS, min_regression_ms)
        and median - reference >= RESOLUTION_STEPS * tick
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
