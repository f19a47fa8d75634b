"""One upload's executions folded per test and per suite (pure)."""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from flakewatch.outcomes import Outcome

# Tests failing together in one run with one signature, at least this many:
# an incident (a database down, a full disk), not each test's own failure.
INCIDENT_MIN_TESTS = 10
# An incident by its shape (incident_cases): this share of the run's tests
# failing, fast, most of them with texts that open alike.
INCIDENT_MIN_SHARE = 0.2
INCIDENT_MAX_MEDIAN_MS = 2000.0
INCIDENT_PREFIX_WORDS = 3
INCIDENT_MIN_AGREEMENT = 0.5
_MASKED = re.compile(r"%|<test>|<tmp>")

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
    """Return the tests whose failure in this run is an incident's.

    ``signature_of`` maps message id to failure signature (the test's own
    identity already masked). Two rules, either one suffices:

    - by signature: INCIDENT_MIN_TESTS or more tests fail with one
      signature;
    - by shape, for texts that still differ (a dialect whose framing is not
      known): at least INCIDENT_MIN_TESTS tests and INCIDENT_MIN_SHARE of
      the run's tests fail, fast (median time at most INCIDENT_MAX_MEDIAN_MS),
      and the failures whose signatures open with the same
      INCIDENT_PREFIX_WORDS words (words with a mask left out) make up
      INCIDENT_MIN_AGREEMENT of them: those are the incident's.
    """
    by_signature: dict[str, list[int]] = defaultdict(list)
    for case_id, run in runs.items():
        message_id = run.message_id
        signature = signature_of.get(message_id) if message_id is not None else None
        if run.failed and signature:
            by_signature[signature].append(case_id)
    found = {
        case_id
        for case_ids in by_signature.values()
        if len(case_ids) >= INCIDENT_MIN_TESTS
        for case_id in case_ids
    }
    return found | _incident_by_shape(runs, by_signature)


def _opening(signature: str) -> str:
    """Return the first INCIDENT_PREFIX_WORDS words a signature fixes.

    Words holding a mask (a number, a test's name, a temp path) are left
    out: ``s%_test.go:%:`` and ``<test>_test.go:%:`` open alike.
    """
    words = [w for w in signature.split() if not _MASKED.search(w)]
    return " ".join(words[:INCIDENT_PREFIX_WORDS])


def _incident_by_shape(
    runs: Mapping[int, CaseRun], by_signature: Mapping[str, list[int]]
) -> set[int]:
    """Return the tests of an incident told by its shape (incident_cases)."""
    failing = sum(len(case_ids) for case_ids in by_signature.values())
    ran = sum(1 for run in runs.values() if not run.skipped_only)
    if failing < INCIDENT_MIN_TESTS or failing < INCIDENT_MIN_SHARE * ran:
        return set()
    by_opening: dict[str, list[int]] = defaultdict(list)
    for signature, case_ids in by_signature.items():
        by_opening[_opening(signature)].extend(case_ids)
    case_ids = max(by_opening.values(), key=len)
    if len(case_ids) < max(INCIDENT_MIN_TESTS, INCIDENT_MIN_AGREEMENT * failing):
        return set()
    times = sorted(runs[case_id].duration_ms or 0.0 for case_id in case_ids)
    if times[len(times) // 2] > INCIDENT_MAX_MEDIAN_MS:
        return set()
    return set(case_ids)


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
