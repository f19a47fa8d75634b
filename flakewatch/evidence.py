"""The evidence store: each test's failures per (commit, job), written and read.

``CommitFailure`` keeps a test's runs on one commit in one job where it
failed at least once: the passes beside those failures (in-run reruns, CI
re-runs) are flakiness, failures with passes on the commits around them are
isolated, failures many tests share in one run are an incident. Writers add
one upload to it (``record_failures``) and judge a re-run from it
(``update_upload_totals``); readers hand the verdicts their input: a test's
failure cells (``cells_by_case``) and each job's default-branch commits in
run order (``job_positions``). The caller owns the transaction.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Mapping
from datetime import datetime
from functools import reduce
from operator import or_

from django.db.models import F, Q, Subquery

from flakewatch import db
from flakewatch.analytics.runs import CaseRun
from flakewatch.analytics.verdicts import Cell, Position
from flakewatch.models import CaseResult, CommitFailure, FailureMessage, Upload
from flakewatch.outcomes import Outcome

# Written per failing test of an upload; a conflict adds to the row.
FAILURE_COLUMNS = db.columns(CommitFailure)

# Read per cell, in this order.
CELL_COLUMNS = [
    "case_id",
    "commit_sha",
    "job",
    "on_default_branch",
    "ran_at",
    "failed_runs",
    "passed_runs",
    "incident_failures",
    "in_run_flake",
    "first_failed_upload_id",
    "message_id",
]


def _failure_conflict() -> str:
    """Return the upsert's SET clause: add the runs, keep the earliest time."""
    target = db.table(CommitFailure)
    return ", ".join(
        [
            f"ran_at = {db.least(f'{target}.ran_at', 'excluded.ran_at')}",
            db.add_excluded(
                CommitFailure, ["failed_runs", "passed_runs", "incident_failures"]
            ),
            f"in_run_flake = {target}.in_run_flake OR excluded.in_run_flake",
        ]
    )


def signatures_of(runs: Mapping[int, CaseRun]) -> dict[int, str]:
    """Return the failure signature of each message the runs failed with."""
    message_ids = {r.message_id for r in runs.values() if r.failed and r.message_id}
    if not message_ids:
        return {}
    return dict(
        FailureMessage.objects.filter(pk__in=message_ids).values_list("pk", "signature")
    )


def record_failures(
    upload: Upload,
    runs: Mapping[int, CaseRun],
    incident_cases: set[int],
    when: datetime,
    visible: Q,
) -> None:
    """Add one upload's runs to its commit and job's failure rows.

    A failing test gets a row (or adds to it), counting the passes seen on
    the same commit and job: this run's own rerun and, for a new row, the
    earlier visible uploads' passes. A passing test that had failed on this
    commit and job adds a pass to that row. Not idempotent: the caller
    applies each upload once.
    """
    on_default = upload.branch == upload.project.default_branch
    # Uses commitfailure_commit_idx (project, commit_sha, job).
    existing = dict(
        CommitFailure.objects.filter(
            project_id=upload.project_id, commit_sha=upload.commit_sha, job=upload.job
        ).values_list("case_id", "pk")
    )
    failing = [case_id for case_id, run in runs.items() if run.failed]
    new_failing = [case_id for case_id in failing if case_id not in existing]
    earlier_passes = (
        _earlier_passes(upload, new_failing, visible) if new_failing else {}
    )
    if failing:
        values = {
            "project_id": upload.project_id,
            "commit_sha": upload.commit_sha,
            "job": upload.job,
            "on_default_branch": on_default,
            "ran_at": when,
            "failed_runs": 1,
            "first_failed_upload_id": upload.pk,
        }
        rows = []
        for case_id in failing:
            run = runs[case_id]
            values["case_id"] = case_id
            values["passed_runs"] = int(run.passed) + earlier_passes.get(case_id, 0)
            values["incident_failures"] = int(case_id in incident_cases)
            values["in_run_flake"] = run.passed and run.failed
            values["message_id"] = run.message_id
            rows.append([values[name] for name in FAILURE_COLUMNS])
        db.upsert(
            CommitFailure,
            FAILURE_COLUMNS,
            rows,
            key=["case_id", "commit_sha", "job"],  # commitfailure_uniq
            update=_failure_conflict(),
        )
    passing_with_failures = [
        pk
        for case_id, pk in existing.items()
        if case_id in runs and runs[case_id].passed and not runs[case_id].failed
    ]
    if passing_with_failures:
        CommitFailure.objects.filter(pk__in=passing_with_failures).update(
            passed_runs=F("passed_runs") + 1
        )


def _earlier_passes(upload: Upload, case_ids: list[int], visible: Q) -> dict[int, int]:
    """Count earlier uploads of this commit and job in which each test passed."""
    earlier = list(
        # Uses upload_project_commit_idx (project, commit_sha): a commit has
        # a handful of uploads, the job is checked on those rows.
        Upload.objects.filter(
            visible,
            project_id=upload.project_id,
            commit_sha=upload.commit_sha,
            job=upload.job,
        )
        .exclude(pk=upload.pk)
        .values_list("pk", flat=True)
    )
    if not earlier:
        return {}
    # Primary key (case_id, upload_id, retry_index): one index probe per pair.
    passes = (
        CaseResult.objects.filter(
            case_id__in=case_ids, upload_id__in=earlier, outcome=Outcome.PASSED
        )
        .values_list("case_id", "upload_id")
        .distinct()
    )
    return Counter(case_id for case_id, _ in passes)


def update_upload_totals(upload: Upload, runs: Mapping[int, CaseRun]) -> None:
    """Set the upload's test time and whether it re-ran a job for flakes.

    A re-run was for flakes alone if every test that failed in the job's
    earlier attempts has now passed on this commit and job, and none of it
    was an incident. Sets the fields on ``upload``; the caller saves them.
    """
    upload.duration_total_ms = math.fsum(r.duration_ms or 0.0 for r in runs.values())
    earlier_attempts = list(
        # Uses upload_build_job_idx (project, build, job, attempt).
        Upload.objects.filter(
            project_id=upload.project_id,
            build=upload.build,
            job=upload.job,
            attempt__lt=upload.attempt,
            status=Upload.Status.DONE,
            failures_count__gt=0,
        ).values_list("pk", flat=True)
    )
    if not earlier_attempts:
        return
    failures = list(
        # Uses commitfailure_commit_idx (project, commit_sha, job).
        CommitFailure.objects.filter(
            project_id=upload.project_id,
            commit_sha=upload.commit_sha,
            job=upload.job,
            first_failed_upload_id__in=earlier_attempts,
        ).values_list("passed_runs", "incident_failures")
    )
    upload.reran_for_flakes = bool(failures) and all(
        passed > 0 and incidents == 0 for passed, incidents in failures
    )


def job_positions(
    upload: Upload, jobs: set[str], visible: Q, since: datetime
) -> dict[str, list[Position]]:
    """Return each job's default-branch commits in run order, oldest first.

    From ``since`` (the start of the window) on, plus each job's last run
    before it: the neighbour that can make a failure at the window's start
    isolated. A commit is placed by its first run. One statement.
    """
    if not jobs:
        return {}
    runs = Upload.objects.filter(
        visible,
        project_id=upload.project_id,
        branch=upload.project.default_branch,
    )
    # Uses upload_run_order_idx (project, branch, job, run_at): a range scan
    # over the window, and for each job one probe backwards from its start.
    last_before = [
        Q(
            pk=Subquery(
                runs.filter(job=job, run_at__lt=since)
                .order_by("-run_at", "-pk")
                .values("pk")[:1]
            )
        )
        for job in sorted(jobs)
    ]
    in_window = Q(job__in=jobs, run_at__gte=since)
    rows = (
        runs.filter(reduce(or_, last_before, in_window))
        .order_by("run_at", "pk")
        .values_list("job", "commit_sha", "run_at")
    )
    # A job's run before the window sorts ahead of its runs in it, so each
    # job's list is that run, then the window's, in run order.
    positions: dict[str, list[Position]] = defaultdict(list)
    seen: set[tuple[str, str]] = set()
    for job, commit, ran in rows:
        if (job, commit) not in seen:
            seen.add((job, commit))
            positions[job].append(Position(ran, commit))
    return positions


def cells_by_case(
    since: Mapping[int, datetime],
) -> tuple[dict[int, list[Cell]], dict[int, Counter[str]]]:
    """Return each test's failure cells and signature counts since ``since``.

    The signatures are counted over the cells, incidents left out.

    Each cell carries the details its evidence shows (upload, build,
    attempt, branch, message). A long-broken test has a row per commit and
    job in the window, each naming its upload and message: those are read
    once each, not once a row. Three statements, read-only.
    """
    cells: dict[int, list[Cell]] = defaultdict(list)
    signatures: dict[int, Counter[str]] = defaultdict(Counter)
    rows = db.select_by_ids(
        # Uses commitfailure_uniq, whose leading column is case_id.
        f"SELECT {', '.join(CELL_COLUMNS)} FROM {db.table(CommitFailure)}"
        " WHERE case_id {ids} AND ran_at >= %s ORDER BY ran_at, commit_sha, job",
        list(since),
        [min(since.values())],
        order=lambda row: (row[4], row[1], row[2]),
    )
    uploads = {
        pk: (build, attempt, branch, failures, tests)
        for pk, build, attempt, branch, failures, tests in db.select_by_ids(
            f"SELECT id, build, attempt, branch, failures_count, tests_count"
            f" FROM {db.table(Upload)} WHERE id {{ids}}",
            list({row[9] for row in rows}),
        )
    }
    messages = {
        pk: (message, signature)
        for pk, message, signature in db.select_by_ids(
            f"SELECT id, message, signature FROM {db.table(FailureMessage)}"
            " WHERE id {ids}",
            list({row[10] for row in rows} - {None}),
        )
    }
    for row in rows:
        case_id, commit, job, on_default, ran_at, failed, passed, incidents = row[:8]
        in_run, upload_id, message_id = row[8:]
        ran_at = db.as_datetime(ran_at)
        if ran_at is None or ran_at < since[case_id]:  # the column is NOT NULL
            continue
        build, attempt, branch, failures, tests = uploads[upload_id]
        message, signature = messages.get(message_id, ("", ""))
        details = {
            "upload_id": upload_id,
            "build": build,
            "attempt": attempt,
            "branch": branch,
            "message": message,
        }
        if incidents:  # what made it an incident: the run's share and text
            details["run_failed_share"] = round(failures / tests, 3) if tests else 0
            details["signature"] = signature
        cells[case_id].append(
            Cell(
                commit=commit,
                job=job,
                on_default_branch=bool(on_default),
                ran_at=ran_at,
                failed_runs=failed,
                passed_runs=passed,
                incident_failures=incidents,
                in_run_flake=bool(in_run),
                details=details,
            )
        )
        if signature and failed > incidents:
            signatures[case_id][signature] += 1
    return cells, signatures
