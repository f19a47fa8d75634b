"""One upload's executions folded per test and per suite (pure)."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from flakewatch.outcomes import Outcome

# Tests failing together in one run with one signature, at least this many:
# an incident (a database down, a full disk), not each test's own failure.
INCIDENT_MIN_TESTS = 10

# An execution as stored, what the analytics read:
# (case_id, retry_index, outcome, duration_ms, message_id or None).
StoredExecution = tuple[int, int, int, "float | None", "int | None"]

FAILED = frozenset((Outcome.FAILED, Outcome.ERROR))


@dataclass(slots=True)
class CaseRun:
    """One test's part in one upload, its executions folded."""

    first_failed: bool = False
    failed: bool = False
    passed: bool = False  # the final attempt passed
    skipped_only: bool = True
    duration_ms: float | None = None
    message_id: int | None = None


def fold_runs(executions: Iterable[StoredExecution]) -> dict[int, CaseRun]:
    """Fold each test's executions (retries) in one upload into a CaseRun.

    "Failed then passed in one run" needs the final attempt to pass: a run
    that ends failed is a failure whatever its earlier records say
    (pytest-rerunfailures writes a rerun attempt as a testcase with no
    result, which reads as a pass).
    """
    runs: dict[int, CaseRun] = {}
    # Tuples sort by case, then retry index (unique together).
    for case_id, _, outcome, duration_ms, message_id in sorted(executions):
        failed = outcome in FAILED  # this loop runs once per execution
        run = runs.get(case_id)
        if run is None:
            run = runs[case_id] = CaseRun(first_failed=failed)
        run.passed = outcome == Outcome.PASSED  # the last attempt decides
        if failed:
            run.failed = True
            if run.message_id is None:
                run.message_id = message_id
        if outcome != Outcome.SKIPPED:
            run.skipped_only = False
        if duration_ms is not None:
            run.duration_ms = duration_ms  # the last attempt's time
    return runs


def incident_cases(
    runs: Mapping[int, CaseRun], signature_of: Mapping[int, str]
) -> set[int]:
    """Return the tests whose failure in this run many tests share.

    ``signature_of`` maps message id to failure signature; a failure shared
    by INCIDENT_MIN_TESTS or more tests, with one signature, is an incident.
    """
    by_signature: dict[str, list[int]] = defaultdict(list)
    for case_id, run in runs.items():
        message_id = run.message_id
        signature = signature_of.get(message_id) if message_id is not None else None
        if run.failed and signature:
            by_signature[signature].append(case_id)
    return {
        case_id
        for case_ids in by_signature.values()
        if len(case_ids) >= INCIDENT_MIN_TESTS
        for case_id in case_ids
    }


def suite_durations_of(
    executions: Iterable[StoredExecution], suite_of: Callable[[int], str]
) -> dict[str, tuple[float, int]]:
    """Sum the upload's test time per suite: name -> (ms, tests).

    Exact whatever the order (math.fsum).
    """
    times: dict[str, list[float]] = defaultdict(list)
    tests: dict[str, set[int]] = defaultdict(set)
    for case_id, _, _, duration_ms, _ in executions:
        suite = suite_of(case_id)
        tests[suite].add(case_id)
        if duration_ms is not None:
            times[suite].append(duration_ms)
    return {name: (math.fsum(times[name]), len(ids)) for name, ids in tests.items()}
