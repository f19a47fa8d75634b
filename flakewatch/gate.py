"""The CI gate: whether a run should pass, from its JUnit results alone.

``judge_run`` takes the executions of one CI run's reports (as
``ingest.parsing`` reads them; nothing is stored) and answers per failed
test: quarantined (an accepted quarantine: does not fail the run),
known_flaky, broken or new_failure (all three fail it). A test that failed
and then passed on an in-run rerun is not a failure. A quarantined test
failing with a signature never seen in its history is flagged
``new_signature``: a quarantine hides the known flake, not a new bug. By
default it still passes, so a quarantine never turns CI red by surprise;
``Project.gate_fails_on_new_signature`` makes it fail the run.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from flakewatch import quarantine
from flakewatch.analytics.signatures import failure_signature
from flakewatch.models import Case, Project, Quarantine
from flakewatch.outcomes import Outcome, Status
from flakewatch.results import identity_hash

QUARANTINED, KNOWN_FLAKY, BROKEN, NEW_FAILURE = (
    "quarantined",
    "known_flaky",
    "broken",
    "new_failure",
)
VERDICTS = (QUARANTINED, KNOWN_FLAKY, BROKEN, NEW_FAILURE)


class Execution(Protocol):
    """What the gate reads of one execution (``ingest.parsing``'s shape)."""

    suite: str
    classname: str
    name: str
    file: str
    outcome: Outcome
    message: str
    detail: str


@dataclass(frozen=True, slots=True)
class GateFailure:
    """One failed test of the run and what flakewatch knows of it."""

    id: int | None
    suite: str
    classname: str
    name: str
    verdict: str
    detail: str
    new_signature: bool | None = None


@dataclass(frozen=True, slots=True)
class GateResult:
    """The gate's answer: pass or not, each failure, and the counts."""

    passed: bool
    failures: list[GateFailure] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)


def judge_run(project: Project, executions: Iterable[Execution]) -> GateResult:
    """Judge one CI run's executions against ``project``'s history.

    A test's final outcome is its last execution that was not skipped, in
    report order (in-run reruns follow the attempt they repeat). Two
    statements whatever the report's size (the failed tests' history, and
    the signatures of the quarantined among them); read-only.
    """
    last: dict[tuple[str, str, str, str], Execution] = {}
    reran: set[tuple[str, str, str, str]] = set()
    tests: set[tuple[str, str, str, str]] = set()
    for execution in executions:
        key = (execution.suite, execution.classname, execution.name, execution.file)
        tests.add(key)
        if execution.outcome == Outcome.SKIPPED:
            continue
        previous = last.get(key)
        if previous is not None and previous.outcome.is_failure:
            reran.add(key)
        last[key] = execution
    failed = {k: e for k, e in last.items() if e.outcome.is_failure}
    rerun_passes = sum(1 for k in reran if not last[k].outcome.is_failure)
    known = _known_cases(project, failed)
    quarantined_ids = [
        row["id"]
        for row in known.values()
        if row["quarantine__state"] == Quarantine.State.ACCEPTED
    ]
    signatures = quarantine.known_signatures(project, quarantined_ids)
    failures = [
        _failure(project, key, execution, known.get(key), signatures)
        for key, execution in sorted(failed.items())
    ]
    counts = {verdict: 0 for verdict in VERDICTS}
    for failure in failures:
        counts[failure.verdict] += 1
    new_signatures = sum(1 for f in failures if f.new_signature)
    passed = all(f.verdict == QUARANTINED for f in failures) and not (
        project.gate_fails_on_new_signature and new_signatures
    )
    counts.update(
        tests=len(tests),
        failed=len(failures),
        passed_on_rerun=rerun_passes,
        new_signature=new_signatures,
    )
    return GateResult(passed=passed, failures=failures, counts=counts)


def _known_cases(
    project: Project, failed: dict[tuple[str, str, str, str], Execution]
) -> dict[tuple[str, str, str, str], dict[str, Any]]:
    hashes = {identity_hash(*key): key for key in failed}
    if not hashes:
        return {}
    # case_identity_uniq (project, identity_hash): one probe per failed test.
    rows = Case.objects.filter(project=project, identity_hash__in=list(hashes)).values(
        "id",
        "identity_hash",
        "state__verdict",
        "state__flake_score",
        "state__broken_since_commit",
        "quarantine__state",
        "quarantine__owner",
        "quarantine__expires_at",
    )
    return {hashes[bytes(row["identity_hash"])]: dict(row) for row in rows}


def _failure(
    project: Project,
    key: tuple[str, str, str, str],
    execution: Execution,
    row: dict[str, Any] | None,
    signatures: dict[int, set[str]],
) -> GateFailure:
    suite, classname, name, _ = key
    if row is None:
        return GateFailure(
            None, suite, classname, name, NEW_FAILURE, "A test flakewatch has not seen."
        )
    case_id, verdict = row["id"], row["state__verdict"]
    if row["quarantine__state"] == Quarantine.State.ACCEPTED:
        signature = failure_signature(execution.message, execution.detail)
        new = signature not in signatures.get(case_id, set())
        detail = (
            f"Quarantined (owner {row['quarantine__owner']}): does not fail the run"
        )
        if new:
            strict = project.gate_fails_on_new_signature
            detail += (
                "; but this failure signature is new to it, which may be a new "
                + ("bug, and this project fails the run on it" if strict else "bug")
            )
        return GateFailure(
            case_id, suite, classname, name, QUARANTINED, detail + ".", new
        )
    if verdict == Status.FLAKY:
        score = row["state__flake_score"] or 0.0
        return GateFailure(
            case_id,
            suite,
            classname,
            name,
            KNOWN_FLAKY,
            f"Known flaky (flake score {score:.3f}) but not quarantined: accept "
            "its quarantine or fix it.",
        )
    if verdict == Status.BROKEN:
        since = row["state__broken_since_commit"] or "unknown"
        return GateFailure(
            case_id,
            suite,
            classname,
            name,
            BROKEN,
            f"Broken since commit {since[:12]}: it fails on the default branch.",
        )
    return GateFailure(
        case_id,
        suite,
        classname,
        name,
        NEW_FAILURE,
        f"A new failure: its verdict is {verdict or 'new'}, not flaky or broken.",
    )
