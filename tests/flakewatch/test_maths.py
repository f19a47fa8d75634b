"""Pure analytics: scores, fixed rule, duration regressions, signatures, runs."""

from __future__ import annotations

import ast
import random
from pathlib import Path

import pytest

import flakewatch.analytics
from flakewatch.analytics import durations, runs, scoring
from flakewatch.analytics.signatures import failure_signature
from flakewatch.analytics.verdicts import judge
from flakewatch.outcomes import Outcome, Status


def test_one_failure_in_three_ranks_below_thirty_in_three_hundred():
    assert scoring.flake_score(1, 3) < scoring.flake_score(30, 300)
    assert scoring.flake_score(1, 3) == pytest.approx(0.0069, abs=5e-4)
    assert scoring.flake_score(30, 300) == pytest.approx(0.065, abs=1e-3)
    assert scoring.flake_score(0, 500) == 0


def test_beta_cdf_and_quantile_invert_each_other():
    for a, b, q in [(2, 2, 0.5), (1, 49, 0.05), (31, 319, 0.95), (0.5, 0.5, 0.3)]:
        x = scoring.beta_quantile(q, a, b)
        assert scoring.beta_cdf(x, a, b) == pytest.approx(q, abs=1e-9)


@pytest.mark.parametrize(("rate", "passes"), [(0.3, 9), (0.05, 59), (0.01, 299)])
def test_passes_to_call_fixed_follow_the_95_percent_rule(rate, passes):
    assert scoring.passes_to_call_fixed(rate) == passes
    assert (1 - rate) ** passes <= 0.05 < (1 - rate) ** (passes - 1)


def series_of(values, start_upload=1):
    series = durations.new_series()
    for offset, ms in enumerate(values):
        durations.add_point(series, start_upload + offset, ms)
    return series


def test_a_fourfold_slowdown_is_found_at_its_first_slow_run():
    rng = random.Random(7)
    values = [
        100 * (4 if i >= 150 else 1) * rng.lognormvariate(0, 0.2) for i in range(300)
    ]
    series = series_of(values)
    assert durations.regressed_since(series) == 151  # upload ids start at 1
    p50, p95 = durations.percentiles(series)
    assert 330 < p50 < 480 and p95 >= p50


def test_noise_and_one_slow_run_are_not_a_regression():
    rng = random.Random(3)
    values = [100 * rng.lognormvariate(0, 0.3) for _ in range(300)]
    values[200] = 5000
    series = durations.new_series()
    for upload, ms in enumerate(values):
        durations.add_point(series, upload, ms)
        assert durations.regressed_since(series) is None


def test_a_regression_that_is_reverted_clears():
    values = [100.0] * 40 + [400.0] * 15 + [100.0] * 15
    assert durations.regressed_since(series_of(values)) is None
    assert durations.regressed_since(series_of(values[:55])) == 41


@pytest.mark.parametrize(
    ("message", "signature"),
    [
        (
            "connection to server at 10.0.0.7 port 5432 failed: Connection refused",
            "connection to server at % port % failed: Connection refused",
        ),
        ("assert 3 == 4", "assert % == %"),
        ("object at 0x7f3a2b1c4d50 is gone", "object at % is gone"),
        ("open /tmp/pytest-of-ci/pytest-12/x0/data.json", "open <tmp>"),
        ("request 5f2b9c1e-1d2a-4b3c-9d8e-7f6a5b4c3d2e failed", "request % failed"),
    ],
)
def test_failure_signatures_mask_incidental_details(message, signature):
    assert failure_signature(message) == signature


def test_signature_falls_back_to_the_first_line_of_the_detail():
    assert failure_signature("", "\n  Traceback (most recent call last):\n x") == (
        "Traceback (most recent call last):"
    )


def test_the_analytics_package_imports_nothing_from_django():
    package = Path(flakewatch.analytics.__file__).parent
    imported = set()
    for module in package.glob("*.py"):
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module)
    assert "flakewatch.outcomes" in imported  # the walk sees the imports
    assert not {name for name in imported if name.split(".")[0] == "django"}


def test_a_run_that_fails_then_passes_is_one_failed_and_passed_run():
    passed, failed = Outcome.PASSED, Outcome.FAILED
    folded = runs.fold_runs(
        [(7, 1, passed, 12.0, None), (7, 0, failed, 30.0, 5), (8, 0, failed, 1.0, 6)]
    )
    assert (folded[7].first_failed, folded[7].failed, folded[7].passed) == (
        True,
        True,
        True,
    )
    assert (folded[7].duration_ms, folded[7].message_id) == (12.0, 5)
    assert (folded[8].failed, folded[8].passed) == (True, False)


def test_a_failure_ten_tests_share_is_an_incident_and_nine_are_not():
    def failing(count: int) -> dict[int, runs.CaseRun]:
        return {
            case: runs.CaseRun(failed=True, skipped_only=False, message_id=1)
            for case in range(count)
        }

    signature = {1: "ConnectionRefusedError: <addr>"}
    assert runs.incident_cases(failing(runs.INCIDENT_MIN_TESTS), signature) == set(
        range(runs.INCIDENT_MIN_TESTS)
    )
    assert runs.incident_cases(failing(runs.INCIDENT_MIN_TESTS - 1), signature) == set()


def test_a_verdict_is_a_status_member():
    verdict = judge([], {}, runs=3)
    assert verdict.status is Status.NEW
    assert judge([], {}, runs=9).status is Status.HEALTHY
    assert judge([], {}, runs=9, quarantined=True).status is Status.QUARANTINED
