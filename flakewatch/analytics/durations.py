"""Duration figures and regressions, folded one run at a time.

A series (a test's or a suite's durations in run order) is kept as a small
state: the newest RECENT_SIZE points and a baseline, the geometric mean of the
points that aged out (an exponentially weighted mean of log durations).
Regression: the median of the newest RECENT_CHECK runs is at least
REGRESSION_RATIO times the baseline and 8 of them are at least
CONSISTENT_RATIO times it: markedly and consistently slower, never one slow
run. While regressed the baseline is frozen (the slowdown does not become the
new normal), until ACCEPT_AFTER_RUNS runs later, when it does.

Folding point by point in run order makes a full recompute replay exactly
what the incremental path did.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

RECENT_SIZE = 20
RECENT_CHECK = 10
CONSISTENT_MIN = 8
REGRESSION_RATIO = 1.5
CONSISTENT_RATIO = 1.25
MIN_DELTA_MS = 1.0  # sub-millisecond tests jitter by more than 50%
BASELINE_WEIGHT = 0.05
BASELINE_MIN_POINTS = 10
ACCEPT_AFTER_RUNS = 300


@dataclass
class DurationSeries:
    """State of one duration series; ``recent`` holds [upload_id, ms] pairs."""

    recent: list[list[float]] = field(default_factory=list)
    baseline_log: float = 0.0
    baseline_points: int = 0
    regressed_since_upload: int | None = None
    regressed_runs: int = 0

    @classmethod
    def from_json(cls, data: dict | list | None) -> DurationSeries:
        if not data or not isinstance(data, dict):
            return cls()
        return cls(
            recent=data.get("recent", []),
            baseline_log=data.get("base", 0.0),
            baseline_points=data.get("base_n", 0),
            regressed_since_upload=data.get("since"),
            regressed_runs=data.get("since_n", 0),
        )

    def to_json(self) -> dict:
        return {
            "recent": self.recent,
            "base": self.baseline_log,
            "base_n": self.baseline_points,
            "since": self.regressed_since_upload,
            "since_n": self.regressed_runs,
        }

    def reference_ms(self) -> float | None:
        """Return the 'before' duration regressions are measured against."""
        if self.baseline_points >= BASELINE_MIN_POINTS:
            return math.exp(self.baseline_log)
        older = [ms for _, ms in self.recent[:-RECENT_CHECK]]
        if len(older) >= BASELINE_MIN_POINTS // 2:
            return _median(older)
        return None

    def add(self, upload_id: int, duration_ms: float) -> None:
        """Fold one run in; points arrive in run order."""
        self.recent.append([upload_id, duration_ms])
        if len(self.recent) > RECENT_SIZE:
            _, aged_ms = self.recent.pop(0)
            if self.regressed_since_upload is None:
                log_ms = math.log(max(aged_ms, 1e-3))
                if self.baseline_points == 0:
                    self.baseline_log = log_ms
                else:
                    self.baseline_log += BASELINE_WEIGHT * (log_ms - self.baseline_log)
                self.baseline_points += 1
        self._judge()

    def _judge(self) -> None:
        reference = self.reference_ms()
        newest = [ms for _, ms in self.recent[-RECENT_CHECK:]]
        if reference is None or len(newest) < RECENT_CHECK:
            return
        slow = reference * CONSISTENT_RATIO
        regressed = (
            _median(newest) >= reference * REGRESSION_RATIO
            and _median(newest) - reference >= MIN_DELTA_MS
            and sum(ms >= slow for ms in newest) >= CONSISTENT_MIN
        )
        if regressed and self.regressed_since_upload is None:
            # The change point: the earliest run from which 80% are slow.
            for index, (upload_id, ms) in enumerate(self.recent):
                tail = [later for _, later in self.recent[index:]]
                if ms >= slow and sum(t >= slow for t in tail) >= 0.8 * len(tail):
                    self.regressed_since_upload = int(upload_id)
                    break
            self.regressed_runs = 0
        elif regressed:
            self.regressed_runs += 1
            if self.regressed_runs >= ACCEPT_AFTER_RUNS:
                self._accept_new_normal()
        elif self.regressed_since_upload is not None:
            self.regressed_since_upload, self.regressed_runs = None, 0

    def _accept_new_normal(self) -> None:
        self.baseline_log = math.log(max(_median([ms for _, ms in self.recent]), 1e-3))
        self.baseline_points = max(self.baseline_points, BASELINE_MIN_POINTS)
        self.regressed_since_upload, self.regressed_runs = None, 0

    def percentiles(self) -> tuple[float | None, float | None]:
        """Return (p50, p95) of the recent runs, in ms."""
        values = sorted(ms for _, ms in self.recent)
        if not values:
            return None, None
        return _quantile(values, 0.5), _quantile(values, 0.95)


def _median(values: list[float]) -> float:
    return _quantile(sorted(values), 0.5)


def _quantile(ordered: list[float], q: float) -> float:
    """Linear-interpolated quantile of an ascending list."""
    position = (len(ordered) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)
