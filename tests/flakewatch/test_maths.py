"""Pure analytics: scores, fixed rule, duration regressions, signatures, runs."""

from __future__ import annotations

import ast
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import flakewatch.analytics
from flakewatch.analytics import durations, runs, scoring
from flakewatch.analytics.signatures import failure_signature
from flakewatch.analytics.verdicts import Cell, Position, judge
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


GO_ID = ("github.com/acme/shop/internal/ledger", "", "TestPostsEntry", "")


@pytest.mark.parametrize(
    ("message", "detail", "identity", "signature"),
    [
        # gotestsum: message "Failed", the test's output framed by go test;
        # the package's own name in the file name is masked too.
        (
            "Failed",
            "=== RUN   TestPostsEntry\n    ledger_test.go:41: dial tcp 10.0.0.7:5432:"
            " connect: connection refused\n--- FAIL: TestPostsEntry (0.00s)\n",
            GO_ID,
            "<test>_test.go:%: dial tcp %: connect: connection refused",
        ),
        # cargo-nextest: no message, a Rust 1.73+ panic naming the thread.
        (
            "",
            "thread 'ledger::tests::posts_entry' panicked at tests/common/mod.rs:22:9:"
            "\nIo(Os { code: 111, kind: ConnectionRefused })",
            (
                "ledger::integration",
                "ledger::integration",
                "ledger::tests::posts_entry",
            ),
            "Io(Os { code: %, kind: ConnectionRefused })",
        ),
    ],
)
def test_runner_framing_is_skipped_to_reach_the_message(
    message, detail, identity, signature
):
    assert failure_signature(message, detail, identity) == signature


def test_a_rust_panic_before_1_73_keeps_its_message():
    detail = "thread 'a::b' panicked at 'connection refused', src/db.rs:10:5"
    assert failure_signature("", detail, ("a", "a", "a::b")) == "connection refused"


@pytest.mark.parametrize(
    ("first", "second"),
    [
        # JUnit 5 names the method whose parameter could not be resolved.
        (
            ("Failed to resolve parameter in method [void com.acme.RefundsIT."
             "shouldRefund()]: Connection refused", ("com.acme.RefundsIT",
             "com.acme.RefundsIT", "shouldRefund", "")),
            ("Failed to resolve parameter in method [void com.acme.LedgerIT."
             "shouldPost(String)]: Connection refused", ("com.acme.LedgerIT",
             "com.acme.LedgerIT", "shouldPost(String)[2]", "")),
        ),
        # A pytest parametrised id; a Jest describe path.
        (
            ('failed on setup with "OSError: disk full" [EUR-0.01]',
             ("pytest", "tests.test_x", "test_pay[EUR-0.01]", "")),
            ('failed on setup with "OSError: disk full" [JPY-100]',
             ("pytest", "tests.test_x", "test_pay[JPY-100]", "")),
        ),
        (
            ("<Cart /> › when empty shows a hint: connect ECONNREFUSED",
             ("<Cart />", "<Cart /> › when empty shows a hint",
              "<Cart /> › when empty shows a hint", "src/Cart.test.tsx")),
            ("<Toast /> renders twice: connect ECONNREFUSED",
             ("<Toast />", "<Toast /> renders twice", "<Toast /> renders twice",
              "src/Toast.test.tsx")),
        ),
    ],
)  # fmt: skip
def test_the_tests_own_identity_is_masked_wherever_it_appears(first, second):
    assert failure_signature(first[0], "", first[1]) == failure_signature(
        second[0], "", second[1]
    )
    assert "<test>" in failure_signature(first[0], "", first[1])


def test_a_short_identity_part_is_not_masked_in_the_message():
    assert failure_signature("get failed: ok", "", ("a", "b", "get", "")) == (
        "get failed: ok"
    )


def _failing(count: int, *, ms: float, texts: int) -> tuple[dict, dict]:
    """Count failing runs whose signatures open alike but differ after."""
    runs_of = {
        case: runs.CaseRun(
            failed=True, skipped_only=False, message_id=case % texts, duration_ms=ms
        )
        for case in range(count)
    }
    return runs_of, {
        m: f"connection refused by node {chr(65 + m)}" for m in range(texts)
    }


def test_an_incident_is_told_by_its_shape_when_its_texts_differ():
    failing, signatures = _failing(12, ms=5.0, texts=12)
    passing = {
        100 + i: runs.CaseRun(passed=True, skipped_only=False) for i in range(20)
    }
    assert runs.incident_cases({**failing, **passing}, signatures) == set(failing)
    # Slow failures, or too small a share of the run, are each test's own.
    slow, _ = _failing(12, ms=30_000.0, texts=12)
    assert runs.incident_cases({**slow, **passing}, signatures) == set()
    many = {100 + i: runs.CaseRun(passed=True, skipped_only=False) for i in range(200)}
    assert runs.incident_cases({**failing, **many}, signatures) == set()


def _series(values: list[float], *, min_ms: float = 50.0, failed_every: int = 0):
    series = durations.new_series()
    for upload, ms in enumerate(values, 1):
        failed = bool(failed_every) and upload % failed_every != 0
        durations.add_run(series, failed=failed)
        if not failed:
            durations.add_point(series, upload, ms, min_regression_ms=min_ms)
    return series


def test_centisecond_timer_flips_are_not_a_regression():
    rng = random.Random(5)
    before = [rng.choice([0.0, 0.0, 10.0]) for _ in range(60)]
    after = [rng.choice([0.0, 10.0, 10.0]) for _ in range(20)]
    assert durations.regressed_since(_series(before + after, min_ms=0.0)) is None


def test_a_regression_must_add_the_minimum_time_per_run():
    values = [20.0] * 40 + [45.0] * 15
    assert durations.regressed_since(_series(values)) is None
    assert durations.regressed_since(_series(values, min_ms=10.0)) == 41
    values = [100.0] * 40 + [400.0] * 15
    assert durations.regressed_since(_series(values)) == 41


def test_a_mostly_failing_test_has_no_duration_baseline():
    values = [100.0] * 120 + [400.0] * 60
    assert durations.regressed_since(_series(values, failed_every=3)) is None
    assert durations.regressed_since(_series(values)) is not None


T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _at(index: int) -> datetime:
    return T0 + timedelta(hours=index)


def _cell(index: int, **fields: object) -> Cell:
    values: dict = {
        "commit": f"c{index}",
        "job": "unit",
        "on_default_branch": True,
        "ran_at": _at(index),
        "failed_runs": 1,
        "passed_runs": 0,
        "incident_failures": 0,
        "in_run_flake": False,
        **fields,
    }
    return Cell(**values)


def _timeline(commits: int) -> dict[str, list[Position]]:
    return {"unit": [Position(_at(i), f"c{i}") for i in range(commits)]}


def test_flaky_since_opens_the_range_where_the_flake_would_have_shown():
    # A 20% flake from commit 60 on: in-run reruns at 61, 64, 66, 70.
    cells = [_cell(i, in_run_flake=True, passed_runs=1) for i in (61, 64, 66, 70)]
    verdict = judge(cells, _timeline(80), runs=80)
    assert verdict.status is Status.FLAKY
    assert verdict.first_flaky_commit == "c61"
    since = int(verdict.flaky_since[1:])
    assert since < 60 < 61  # the true start is inside the range
    assert 61 - since < 40  # as narrow as the rate allows
    # A flake from the first commit: the range opens at the oldest run.
    early = [_cell(i, in_run_flake=True, passed_runs=1) for i in (2, 5, 9)]
    assert judge(early, _timeline(20), runs=20).flaky_since == "c0"


def test_a_branch_only_failure_with_passes_there_is_not_flakiness():
    branch = [
        _cell(i, on_default_branch=False, passed_runs=1, in_run_flake=(i % 2 == 0))
        for i in (3, 4, 6, 8)
    ]
    assert judge(branch, _timeline(20), runs=20).status is Status.HEALTHY
    # With a flake on the default branch too, the branch's count.
    default = [_cell(10, in_run_flake=True, passed_runs=1)]
    assert judge(branch + default, _timeline(20), runs=20).status is Status.FLAKY


def test_a_test_that_failed_only_in_incidents_is_healthy_and_says_why():
    cells = [
        _cell(
            i,
            incident_failures=1,
            passed_runs=1,
            details={"run_failed_share": 0.8, "signature": "connection refused"},
        )
        for i in (3, 9, 15)
    ]
    verdict = judge(cells, _timeline(40), runs=40)
    assert verdict.status is Status.HEALTHY
    assert (verdict.flake_events, verdict.flake_rate) == (0, 0.0)
    assert [e["kind"] for e in verdict.evidence] == ["incident"] * 3
    assert verdict.evidence[0]["run_failed_share"] == 0.8
    assert verdict.evidence[0]["commit"] == "c3"
