"""The synthetic history generator keeps its own promises (no database)."""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET
from collections import Counter
from datetime import UTC, datetime

import pytest

from flakewatch.synthetic_history import (
    KINDS,
    MIN_POPULATIONS,
    NEVER_FLAKY,
    RECALL_MIN_RATE,
    SCALES,
    SEED,
    Verdict,
    generate_history,
    score,
)
from ingest.parsing import parse_report

FAILING_CHILDREN = {"failure", "error", "flakyFailure", "rerunFailure"}
RERUN_CHILDREN = {"flakyFailure", "flakyError", "rerunFailure", "rerunError"}


# Observable flaky tests (flaky, flaky_from, flaky_until) per failure rate:
# rare ones below the recall threshold test precision, the others recall.
RATE_BANDS = {
    "rare (1-3 %)": (0.0, RECALL_MIN_RATE, 2),
    "low (3-10 %)": (RECALL_MIN_RATE, 0.10, 5),
    "high (10-30 %)": (0.10, 1.0, 5),
}


@pytest.fixture(scope="module")
def history():
    """Return the history the accuracy test scores (the same seed and size)."""
    return generate_history(**SCALES["small"], seed=SEED)


def _identity(suite_name: str, case: ET.Element) -> tuple:
    return (
        suite_name,
        case.get("classname", ""),
        case.get("name"),
        case.get("file", ""),
    )


def _emitted(history) -> tuple[Counter, Counter]:
    """Count executions and shown failures per test identity in the XML."""
    executions, failures = Counter(), Counter()
    for upload in history.uploads:
        root = ET.fromstring(upload.body)
        for suite in root.iter("testsuite"):
            for case in suite.iter("testcase"):
                key = _identity(suite.get("name"), case)
                children = [child.tag for child in case]
                executions[key] += 1 + sum(tag in RERUN_CHILDREN for tag in children)
                failures[key] += sum(tag in FAILING_CHILDREN for tag in children)
    return executions, failures


def test_the_same_seed_gives_the_same_history(history):
    again = generate_history(**SCALES["small"], seed=SEED)
    assert [u.body for u in again.uploads] == [u.body for u in history.uploads]
    assert again.truth == history.truth
    other = generate_history(**SCALES["small"], seed=SEED + 1)
    assert [u.body for u in other.uploads] != [u.body for u in history.uploads]


def test_the_history_has_the_planned_shape(history):
    assert len(history.truth) == SCALES["small"]["tests"]
    assert len(history.commits) == SCALES["small"]["commits"]
    assert len(history.branches) == SCALES["small"]["branches"]
    kinds = Counter(t.kind for t in history.truth.values())
    assert set(kinds) == set(KINDS)
    flaky = [t for t in history.truth.values() if t.kind.startswith("flaky")]
    assert all(0.01 <= t.rate <= 0.30 for t in flaky)
    assert sum(t.rate >= 0.03 for t in flaky) >= 10
    assert len(history.incidents) == SCALES["small"]["incidents"]
    assert all(incident.victims >= 20 for incident in history.incidents)
    main = [u for u in history.uploads if u.branch == history.default_branch]
    assert {u.commit for u in main} == set(history.commits)
    assert {u.attempt for u in history.uploads} == {1, 2}
    assert {u.dialect for u in history.uploads} == {
        "pytest",
        "surefire",
        "jest",
        "gotestsum",
        "nextest",
    }


def test_every_scored_population_is_big_enough_for_the_seed_in_use(history):
    truth = list(history.truth.values())
    observable = [t for t in truth if t.kind.startswith("flaky") and t.observable]
    for band, (low, high, minimum) in RATE_BANDS.items():
        size = sum(low <= t.rate < high for t in observable)
        assert size >= minimum, f"{size} observable flaky tests {band}"
    populations = {
        "recall": sum(
            t.kind in ("flaky", "flaky_from") and t.rate >= RECALL_MIN_RATE
            for t in observable
        ),
        "recall_all": sum(t.kind in ("flaky", "flaky_from") for t in observable),
        "fixed": sum(t.kind == "flaky_until" for t in observable),
        "broken_then_fixed": sum(
            t.kind == "broken_window" and t.end_index is not None for t in truth
        ),
        "first_flaky_commit": sum(
            t.kind in ("flaky", "flaky_from") and bool(t.flaky_evidence) for t in truth
        ),
        "duration_regressed": sum(t.duration_regressed for t in truth),
        **{kind: sum(t.kind == kind for t in truth) for kind in NEVER_FLAKY},
    }
    assert set(populations) == set(MIN_POPULATIONS)
    small = {k: n for k, n in populations.items() if n < MIN_POPULATIONS[k]}
    assert not small, f"populations below MIN_POPULATIONS: {small}"
    broken = [t for t in truth if t.kind == "broken_window"]
    assert any(t.end_index is None for t in broken), "none still broken at the end"
    assert any(t.end_index is not None for t in broken), "none broken then fixed"


def test_an_empty_population_fails_the_targets(history):
    perfect = {
        key: Verdict(
            status=t.expected_status,
            first_flaky_commit=t.start_sha if t.expected_status == "flaky" else "",
            duration_regressed=t.duration_regressed,
        )
        for key, t in history.truth.items()
    }
    no_slow = {k: t for k, t in history.truth.items() if not t.duration_regressed}
    scores = score(no_slow, perfect, positions=history.positions)
    assert scores.duration_population == 0
    assert scores.duration_recall == 0.0
    assert any("duration_regressed population" in f for f in scores.target_failures())
    no_flaky = {k: t for k, t in history.truth.items() if not t.kind.startswith("fl")}
    failures = score(no_flaky, perfect, positions=history.positions).target_failures()
    for population in ("recall", "fixed", "first_flaky_commit"):
        assert any(f"the {population} population" in f for f in failures), failures


def test_started_at_is_strictly_increasing_in_commit_order(history):
    times = [datetime.fromisoformat(u.started_at) for u in history.uploads]
    assert all(a < b for a, b in itertools.pairwise(times))
    main_order = [
        u.commit
        for u in history.uploads
        if u.branch == history.default_branch and u.attempt == 1
    ]
    assert list(dict.fromkeys(main_order)) == history.commits
    end = datetime(2026, 11, 1, tzinfo=UTC)
    shifted = generate_history(**SCALES["small"], seed=SEED, end_at=end)
    assert datetime.fromisoformat(shifted.uploads[-1].started_at) == end
    assert [u.body for u in shifted.uploads] == [u.body for u in history.uploads]


def test_a_second_attempt_follows_a_failed_first_one_in_rerun_jobs(history):
    firsts = {(u.build, u.job): u for u in history.uploads if u.attempt == 1}
    for upload in history.uploads:
        if upload.attempt == 2:
            first = firsts[(upload.build, upload.job)]
            assert upload.job in ("unit-py312", "integration")
            assert first.commit == upload.commit
            assert b"<failure" in first.body or b"<error" in first.body


def test_names_that_need_escaping_survive_the_xml(history):
    names = [" ".join(key) for key in history.truth]
    for character in ("<", "&", '"', "'"):
        assert any(character in name for name in names), character
    for upload in history.uploads:
        root = ET.fromstring(upload.body)
        for suite in root.iter("testsuite"):
            for case in suite.iter("testcase"):
                assert _identity(suite.get("name"), case) in history.truth


def test_truth_matches_what_the_reports_show(history):
    executions, failures = _emitted(history)
    for key, truth in history.truth.items():
        assert executions[key] == truth.executions, key
        shown = (
            truth.visible_flaky_failures + truth.incident_failures + truth.hard_failures
        )
        assert failures[key] == shown, key
        if truth.kind == "healthy":
            assert failures[key] == 0
        if truth.kind == "incident_victim_only":
            assert failures[key] == truth.incident_failures > 0
        if truth.kind == "flaky_from":
            assert min(truth.flaky_evidence, default=1e9) >= truth.start_index
        if truth.kind == "flaky_until":
            assert max(truth.flaky_evidence, default=0) < truth.end_index
            assert truth.expected_status == "fixed"
        if truth.kind in ("broken_window", "branch_broken", "config_only"):
            assert truth.hard_failures > 0 and not truth.flaky_evidence


def test_the_ingest_parser_reads_every_report_as_emitted(history):
    parsed = Counter()
    for upload in history.uploads:
        report = parse_report(upload.body)
        assert (report.errors, report.warnings) == ([], [])
        for e in report.executions:
            parsed[(e.suite, e.classname, e.name, e.file)] += 1
    assert parsed == Counter({k: t.executions for k, t in history.truth.items()})


def test_a_perfect_verdict_scores_perfectly(history):
    verdicts = {
        key: Verdict(
            status=t.expected_status,
            first_flaky_commit=t.start_sha if t.expected_status == "flaky" else "",
            flaky_since=t.start_sha if t.expected_status == "flaky" else "",
            duration_regressed=t.duration_regressed,
        )
        for key, t in history.truth.items()
    }
    scores = score(history.truth, verdicts, positions=history.positions)
    assert scores.target_failures() == []
    assert scores.first_flaky_accuracy == 1.0
    assert scores.flaky_since_coverage == 1.0
    assert scores.flaky_since_median_width == 0
    assert scores.misjudged == []


def test_a_flaky_since_range_that_misses_the_start_is_scored_and_explained(history):
    verdicts = {
        key: Verdict(
            status=t.expected_status,
            first_flaky_commit=t.start_sha if t.expected_status == "flaky" else "",
            flaky_since=t.start_sha if t.expected_status == "flaky" else "",
            duration_regressed=t.duration_regressed,
        )
        for key, t in history.truth.items()
    }
    late = [k for k, t in history.truth.items() if t.kind == "flaky_from"]
    for key in late:  # a range opening after the true start
        verdicts[key] = Verdict(
            status="flaky",
            first_flaky_commit=history.commits[-1],
            flaky_since=history.commits[-2],
        )
    scores = score(history.truth, verdicts, positions=history.positions)
    introduced = [k for k in late if history.truth[k].flaky_evidence]
    assert scores.introduced_population == len(introduced) > 0
    assert scores.first_flaky_within_3 == 0.0
    assert scores.flaky_since_coverage < 1.0
    missed = {m.key for m in scores.misjudged if m.expected.startswith("flaky_since")}
    assert missed == set(introduced)


def test_incident_texts_name_each_test_but_share_one_masked_signature(history):
    from flakewatch.analytics.signatures import failure_signature

    dialects = set()
    for incident in history.incidents:
        upload = next(
            u
            for u in history.uploads
            if u.commit == incident.sha and u.job == incident.job and u.attempt == 1
        )
        failed = [
            e for e in parse_report(upload.body).executions if e.outcome in (1, 2)
        ]
        assert len(failed) >= incident.victims
        firsts = {(e.message or e.detail).splitlines()[0] for e in failed}
        names = [e.name for e in failed]
        if any(name.split("[")[0] in first for first in firsts for name in names):
            dialects.add(upload.dialect)
        masked = Counter(
            failure_signature(
                e.message, e.detail, (e.suite, e.classname, e.name, e.file)
            )
            for e in failed
        )
        # The shape rule (analytics.runs) covers what masking leaves apart.
        assert masked.most_common(1)[0][1] >= len(failed) // 2, masked
    assert dialects, "no incident text names its tests"


def test_go_times_are_centiseconds_and_main_is_rarely_rerun(history):
    go = [u for u in history.uploads if u.dialect == "gotestsum"]
    times = set()
    for upload in go:
        for case in ET.fromstring(upload.body).iter("testcase"):
            times.add(float(case.get("time")))
    assert all(abs(t * 100 - round(t * 100)) < 1e-6 for t in times)
    assert 0.0 in times and 0.01 in times
    firsts = Counter()
    seconds = Counter()
    for upload in history.uploads:
        if upload.job not in ("unit-py312", "integration"):
            continue
        where = "main" if upload.branch == history.default_branch else "branch"
        red = b"<failure" in upload.body or b"<error" in upload.body
        if upload.attempt == 1 and red:
            firsts[where] += 1
        elif upload.attempt == 2:
            seconds[where] += 1
    assert seconds["branch"] == firsts["branch"] > 0
    assert 0 < seconds["main"] < firsts["main"] / 2


def test_calling_a_broken_test_flaky_is_counted_and_explained(history):
    verdicts = {
        key: Verdict(status=t.expected_status, duration_regressed=t.duration_regressed)
        for key, t in history.truth.items()
    }
    broken = next(k for k, t in history.truth.items() if t.kind == "branch_broken")
    verdicts[broken] = Verdict(status="flaky")
    scores = score(history.truth, verdicts)
    assert scores.forbidden_flaky == 1
    assert scores.wrongly_flaky == {"branch_broken": 1}
    assert [m.key for m in scores.misjudged] == [broken]
    assert any("called flaky" in failure for failure in scores.target_failures())


def test_the_population_sizes_for_the_seed_in_use(history):
    # The accuracy test scores these; a change to the generator that shrinks
    # one shows here first.
    truth = list(history.truth.values())
    assert Counter(t.kind for t in truth) == {
        "healthy": 112,
        "flaky": 14,
        "flaky_from": 6,
        "flaky_until": 6,
        "broken_window": 4,
        "branch_broken": 2,
        "config_only": 1,
        "incident_victim_only": 49,
        "slow_from": 6,
    }
    observable = [t for t in truth if t.kind.startswith("flaky") and t.observable]
    bands = {
        band: sum(low <= t.rate < high for t in observable)
        for band, (low, high, _) in RATE_BANDS.items()
    }
    assert bands == {"rare (1-3 %)": 2, "low (3-10 %)": 7, "high (10-30 %)": 16}
    broken = [t for t in truth if t.kind == "broken_window"]
    assert sum(t.end_index is not None for t in broken) == 2
    assert sum(t.went_quiet for t in truth) == 2
    assert (len(history.uploads), len(history.incidents)) == (614, 4)
