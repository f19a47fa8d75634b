"""Add uploads to the analytics tables, and replay them all (recompute).

``analyze_upload`` (the worker's task, after an upload's results commit)
applies the project's waiting done uploads in run order through
``apply_uploads`` and marks them analysed in the same transaction, so each
counts exactly once. It touches only the tests and suites in the uploads:

1. DailyCaseStat: add the runs, first-attempt failures and time.
2. CommitFailure, per upload: for each test that failed, its (commit, job)
   failure row, with the passes seen on the same commit and job (this
   upload's in-run reruns, earlier uploads' re-runs); passes of tests that
   had failed on this commit and job are added to those rows. Failures that
   INCIDENT_MIN_TESTS or more tests share, with one signature, in one run are
   incidents.
3. CaseState, once per test for the batch: counts, duration series, and the
   verdict (verdicts.judge) with its evidence.
4. SuiteState, per upload: the suite's duration series.

On PostgreSQL an advisory lock serialises this step per project: a verdict
reads failures other uploads wrote, so they must be committed, not in flight.

``recompute_project`` empties these tables and replays every done upload in
run order through ``apply_uploads``: the same code, the same order, so the
same answers as the incremental path.
"""

from __future__ import annotations

import json
import logging
import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from django.db import connection, transaction
from django.db.models import F, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from flakewatch.analytics import durations
from flakewatch.analytics.verdicts import Cell, Position, judge
from flakewatch.models import (
    CaseResult,
    CaseState,
    CommitFailure,
    DailyCaseStat,
    FailureMessage,
    Project,
    SuiteState,
    Upload,
)
from flakewatch.outcomes import Outcome
from flakewatch.results import StoredExecution, stored_executions

logger = logging.getLogger(__name__)

INCIDENT_MIN_TESTS = 10
STATE_BATCH = 10_000
# A backlog is analysed in batches of at most this many uploads and executions
# (by tests_count): enough to amortise the per-test state writes, small
# enough to bound a batch's memory and transaction.
MAX_BATCH_UPLOADS = 50
MAX_BATCH_EXECUTIONS = 200_000
WINDOW = timedelta(days=90)
MAX_TOP_SIGNATURES = 5
FAILED = (Outcome.FAILED, Outcome.ERROR)


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
        run = runs.get(case_id)
        if run is None:
            run = runs[case_id] = CaseRun(first_failed=outcome in FAILED)
        run.passed = outcome == Outcome.PASSED  # the last attempt decides
        if outcome in FAILED:
            run.failed = True
            if run.message_id is None:
                run.message_id = message_id
        if outcome != Outcome.SKIPPED:
            run.skipped_only = False
        if duration_ms is not None:
            run.duration_ms = duration_ms  # the last attempt's time
    return runs


def _is_postgres() -> bool:
    return connection.vendor == "postgresql"


def _select_by_ids(sql: str, ids: list[int], params: list | None = None) -> list:
    """Run ``sql`` whose ``{ids}`` names the id list: one array on PostgreSQL,
    chunks of IN lists elsewhere (SQLite caps bound parameters)."""
    rows: list = []
    with connection.cursor() as cursor:
        if _is_postgres():
            cursor.execute(sql.format(ids="= ANY(%s)"), [ids, *(params or [])])
            return cursor.fetchall()
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ", ".join(["%s"] * len(chunk))
            cursor.execute(sql.format(ids=f"IN ({marks})"), [*chunk, *(params or [])])
            rows.extend(cursor.fetchall())
    return rows


def _upsert_by_copy(
    table: str, columns: list[str], key: str, rows: list, update: str
) -> None:
    """Upsert ``rows`` into ``table`` via COPY into a staging copy of it."""
    stage = f"fw_stage_{table}"
    column_list = ", ".join(columns)
    with connection.cursor() as cursor:
        # Created once per transaction and emptied for each use: recompute
        # replays thousands of uploads in one transaction, and every table
        # created there would hold a lock until it ends.
        cursor.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {stage} ON COMMIT DROP AS"
            f" SELECT {column_list} FROM {table} WITH NO DATA"
        )
        cursor.execute(f"TRUNCATE {stage}")
        with cursor.copy(f"COPY {stage} ({column_list}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        cursor.execute(
            f"INSERT INTO {table} ({column_list}) SELECT {column_list} FROM {stage}"
            f" ON CONFLICT ({key}) DO UPDATE SET {update}"
        )


def ran_at(upload: Upload) -> datetime:
    """When an upload's tests ran: the CI's start time, else arrival."""
    return upload.started_at or upload.received_at


def _lock_project(project_id: int) -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            # Key space: flakewatch's analytics lock per project.
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [0x666C, project_id])


def apply_uploads(
    uploads: list[Upload],
    *,
    replay: bool = False,
    suites: dict[int, str] | None = None,
) -> None:
    """Add one project's uploads, in run order, to the analytics; the caller
    owns the transaction and marks them analysed.

    Each must be applied once: the caller's mark guarantees it. Per upload,
    in order: failure evidence, totals, suite series. Per test, once for all
    of them: counters, duration series and the verdict. That is what applying
    them one at a time gives, because a test's verdict reads only its own
    failure rows, which only uploads that ran it change; a backlog of uploads
    of one test suite then costs one state update per test, not one per
    upload. ``replay`` (recompute) lets each upload see only those that ran
    before it, as the incremental path saw them. ``suites`` maps case id to
    suite name (default: read per upload).
    """
    if not uploads:
        return
    _lock_project(uploads[0].project_id)
    suites = {} if suites is None else suites
    appearances: dict[int, list[tuple[int, CaseRun, datetime]]] = defaultdict(list)
    daily: dict[tuple[int, date], list] = {}
    applied: list[int] = []
    for upload in uploads:
        executions = stored_executions(upload.pk)
        runs = fold_runs(executions)
        when = ran_at(upload)
        applied.append(upload.pk)
        visible = _visible_uploads(upload, when, replay, applied)
        _count_daily_stats(daily, runs, when)
        _record_failures(upload, runs, _incident_cases(runs), when, visible)
        _update_upload_totals(upload, runs)
        for case_id, run in runs.items():
            appearances[case_id].append((upload.pk, run, when))
        unknown = [case_id for case_id in runs if case_id not in suites]
        if unknown:  # a backlog of one suite's uploads reads its names once
            suites.update(_suites_of(unknown))
        suite_totals = suite_durations_of(executions, suites.__getitem__)
        _update_suite_states(upload, suite_totals, when)
    _save_daily_stats(daily)
    last = uploads[-1]
    visible = _visible_uploads(last, ran_at(last), replay, applied)
    # In slices, so a 100,000-test upload never holds every state at once.
    case_ids = list(appearances)
    for start in range(0, len(case_ids), STATE_BATCH):
        batch = {
            case_id: appearances[case_id]
            for case_id in case_ids[start : start + STATE_BATCH]
        }
        _update_case_states(last, batch, visible)


def _suites_of(case_ids: list[int]) -> dict[int, str]:
    return dict(
        _select_by_ids("SELECT id, suite FROM flakewatch_case WHERE id {ids}", case_ids)
    )


def _visible_uploads(
    upload: Upload, when: datetime, replay: bool, applied: list[int]
) -> Q:
    """The uploads whose results this one may build on (annotate ``ran``):
    those already in the analytics (``applied``: this one and those before
    it in its batch), as a replay in run order sees them."""
    if not replay:
        return Q(analyzed_at__isnull=False) | Q(pk__in=applied)
    return Q(status=Upload.Status.DONE) & (
        Q(ran__lt=when) | Q(ran=when, pk__lte=upload.pk)
    )


def analyze_upload(upload_id: int) -> None:
    """Add a done upload to the analytics, once; safe to repeat.

    Takes the project's other done uploads still waiting for analysis along,
    up to MAX_BATCH_EXECUTIONS, oldest run first: under a backlog, the tasks
    behind this one then find their upload analysed and return at once.
    Each batch owns its transaction: the analytics rows and the uploads'
    ``analyzed_at`` marks commit together, so a redelivered task finds the
    mark and stops.
    """
    waiting = Upload.objects.filter(
        pk=upload_id, status=Upload.Status.DONE, analyzed_at__isnull=True
    )
    # Checked before the lock too: a task whose upload an earlier batch took
    # along returns at once rather than queue behind the batch running now.
    project_id = waiting.values_list("project_id", flat=True).first()
    if project_id is None:
        return
    while True:
        with transaction.atomic():
            # The project lock first, then the rows: recompute takes them in
            # this order too, so the two never deadlock.
            _lock_project(project_id)
            if not waiting.exists():
                return
            batch = _waiting_batch(project_id)
            apply_uploads(batch)
            now = timezone.now()
            for upload in batch:
                upload.analyzed_at = now
            Upload.objects.bulk_update(
                batch, ["analyzed_at", "duration_total_ms", "reran_for_flakes"]
            )
        if any(upload.pk == upload_id for upload in batch):
            return


def _waiting_batch(project_id: int) -> list[Upload]:
    """Lock and return the project's oldest done, unanalysed uploads."""
    waiting = (
        # of=self: locking the joined project row too would stall every new
        # upload of the project (its foreign key check) meanwhile. Uses
        # upload_unanalyzed_idx (partial: done and not analysed).
        Upload.objects.select_for_update(of=("self",))
        .select_related("project")
        .filter(
            project_id=project_id,
            status=Upload.Status.DONE,
            analyzed_at__isnull=True,
        )
        .annotate(ran=Coalesce("started_at", "received_at"))
        .order_by("ran", "pk")
    )
    return next(_batches(waiting[:MAX_BATCH_UPLOADS]), [])


def _batches(uploads: Iterable[Upload]) -> Iterator[list[Upload]]:
    """Cut uploads (in run order) into batches of at most MAX_BATCH_UPLOADS
    uploads and MAX_BATCH_EXECUTIONS tests; an upload larger than that is a
    batch of its own."""
    batch, tests = [], 0
    for upload in uploads:
        if batch and (
            len(batch) == MAX_BATCH_UPLOADS
            or tests + upload.tests_count > MAX_BATCH_EXECUTIONS
        ):
            yield batch
            batch, tests = [], 0
        batch.append(upload)
        tests += upload.tests_count
    if batch:
        yield batch


def _incident_cases(runs: dict[int, CaseRun]) -> set[int]:
    """Tests whose failure in this run many tests share with one signature."""
    message_ids = {r.message_id for r in runs.values() if r.failed and r.message_id}
    if not message_ids:
        return set()
    signatures = dict(
        FailureMessage.objects.filter(pk__in=message_ids).values_list("pk", "signature")
    )
    by_signature: dict[str, list[int]] = defaultdict(list)
    for case_id, run in runs.items():
        signature = signatures.get(run.message_id)
        if run.failed and signature:
            by_signature[signature].append(case_id)
    return {
        case_id
        for case_ids in by_signature.values()
        if len(case_ids) >= INCIDENT_MIN_TESTS
        for case_id in case_ids
    }


def _count_daily_stats(
    daily: dict[tuple[int, date], list], runs: dict[int, CaseRun], when: datetime
) -> None:
    """Add an upload's runs to ``daily``: (case, day) -> [runs, failures,
    skipped, duration_total_ms]."""
    day = when.date()
    for case_id, run in runs.items():
        counts = daily.get((case_id, day))
        if counts is None:
            counts = daily[(case_id, day)] = [0, 0, 0, 0.0]
        counts[0] += 1
        counts[1] += run.first_failed
        counts[2] += run.skipped_only
        counts[3] += run.duration_ms or 0.0


def _save_daily_stats(daily: dict[tuple[int, date], list]) -> None:
    rows = [(case_id, day, *counts) for (case_id, day), counts in daily.items()]
    table = DailyCaseStat._meta.db_table
    increment = (
        f"runs = {table}.runs + excluded.runs,"
        f" failures = {table}.failures + excluded.failures,"
        f" skipped = {table}.skipped + excluded.skipped,"
        f" duration_total_ms = {table}.duration_total_ms + excluded.duration_total_ms"
    )
    if _is_postgres():
        _upsert_by_copy(
            table,
            ["case_id", "day", "runs", "failures", "skipped", "duration_total_ms"],
            "case_id, day",
            rows,
            increment,
        )
        return
    with connection.cursor() as cursor:
        # Uses dailycasestat_uniq (case_id, day) as the conflict target.
        cursor.executemany(
            f"INSERT INTO {table} (case_id, day, runs, failures, skipped,"
            " duration_total_ms) VALUES (%s, %s, %s, %s, %s, %s)"
            f" ON CONFLICT (case_id, day) DO UPDATE SET {increment}",
            rows,
        )


def _record_failures(
    upload: Upload,
    runs: dict[int, CaseRun],
    incident_cases: set[int],
    when: datetime,
    visible: Q,
) -> None:
    project = upload.project
    on_default = upload.branch == project.default_branch
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

    table = CommitFailure._meta.db_table
    least = "LEAST" if connection.vendor == "postgresql" else "MIN"
    rows = [
        (
            upload.project_id, case_id, upload.commit_sha, upload.job, on_default, when,
            1, int(runs[case_id].passed) + earlier_passes.get(case_id, 0),
            int(case_id in incident_cases), runs[case_id].passed and runs[case_id].failed,
            upload.pk, runs[case_id].message_id,
        )
        for case_id in failing
    ]  # fmt: skip
    with connection.cursor() as cursor:
        if rows:
            cursor.executemany(
                f"INSERT INTO {table} (project_id, case_id, commit_sha, job,"
                " on_default_branch, ran_at, failed_runs, passed_runs,"
                " incident_failures, in_run_flake, first_failed_upload_id, message_id)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (case_id, commit_sha, job) DO UPDATE SET"
                f" ran_at = {least}({table}.ran_at, excluded.ran_at),"
                f" failed_runs = {table}.failed_runs + excluded.failed_runs,"
                f" passed_runs = {table}.passed_runs + excluded.passed_runs,"
                f" incident_failures = {table}.incident_failures"
                " + excluded.incident_failures,"
                f" in_run_flake = {table}.in_run_flake OR excluded.in_run_flake",
                rows,
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
        # Uses upload_project_commit_idx (project, commit_sha).
        Upload.objects.annotate(ran=Coalesce("started_at", "received_at"))
        .filter(
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


def _update_upload_totals(upload: Upload, runs: dict[int, CaseRun]) -> None:
    upload.duration_total_ms = math.fsum(r.duration_ms or 0.0 for r in runs.values())
    earlier_attempts = list(
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
    # The re-run was for flakes alone if every test that failed before has
    # now passed on this commit and job, and none of it was an incident.
    failures = CommitFailure.objects.filter(
        project_id=upload.project_id,
        commit_sha=upload.commit_sha,
        job=upload.job,
        first_failed_upload_id__in=earlier_attempts,
    ).values_list("passed_runs", "incident_failures")
    failures = list(failures)
    upload.reran_for_flakes = bool(failures) and all(
        passed > 0 and incidents == 0 for passed, incidents in failures
    )


def _job_positions(
    upload: Upload, jobs: set[str], visible: Q, since: datetime
) -> dict[str, list[Position]]:
    """Each job's default-branch commits in run order, oldest first, from
    ``since`` (the start of the window) on, and the last one before it: the
    neighbour that can make a failure at the window's start isolated."""
    if not jobs:
        return {}
    runs = (
        Upload.objects.annotate(ran=Coalesce("started_at", "received_at"))
        .filter(
            visible,
            project_id=upload.project_id,
            branch=upload.project.default_branch,
            job__in=jobs,
        )
        .values_list("job", "commit_sha", "ran", "pk")
    )
    rows = []
    for job in sorted(jobs):
        before = runs.filter(job=job, ran__lt=since).order_by("-ran", "-pk").first()
        if before is not None:
            rows.append(before)
    rows += runs.filter(ran__gte=since).order_by("ran", "pk")
    positions: dict[str, list[Position]] = defaultdict(list)
    seen: set[tuple[str, str]] = set()
    for job, commit, ran, _ in rows:
        if (job, commit) not in seen:  # a commit's first run places it
            seen.add((job, commit))
            positions[job].append(Position(ran, commit))
    return positions


def _cells_by_case(since: dict[int, datetime]) -> tuple:
    """Failure rows of each test since its ``since``, with evidence details.

    A long-broken test has a row per commit and job in the window, each
    naming its upload and message: those are read once each, not once a row.
    """
    cells: dict[int, list[Cell]] = defaultdict(list)
    signatures: dict[int, Counter] = defaultdict(Counter)
    rows = _select_by_ids(
        # Uses commitfailure_uniq, whose leading column is case_id.
        "SELECT case_id, commit_sha, job, on_default_branch, ran_at, failed_runs,"
        " passed_runs, incident_failures, in_run_flake, first_failed_upload_id,"
        " message_id FROM flakewatch_commitfailure"
        " WHERE case_id {ids} AND ran_at >= %s"
        " ORDER BY ran_at, commit_sha, job",
        list(since),
        [min(since.values())],
    )
    if not _is_postgres():
        rows.sort(key=lambda row: (row[4], row[1], row[2]))
    uploads = {
        pk: (build, attempt, branch)
        for pk, build, attempt, branch in _select_by_ids(
            "SELECT id, build, attempt, branch FROM flakewatch_upload WHERE id {ids}",
            list({row[9] for row in rows}),
        )
    }
    messages = {
        pk: (message, signature)
        for pk, message, signature in _select_by_ids(
            "SELECT id, message, signature FROM flakewatch_failuremessage"
            " WHERE id {ids}",
            list({row[10] for row in rows} - {None}),
        )
    }
    for (
        case_id, commit, job, on_default, cell_ran_at, failed, passed, incidents,
        in_run, upload_id, message_id,
    ) in rows:  # fmt: skip
        if isinstance(cell_ran_at, str):  # SQLite hands back text
            cell_ran_at = datetime.fromisoformat(cell_ran_at)
        if cell_ran_at < since[case_id]:
            continue
        build, attempt, branch = uploads[upload_id]
        message, signature = messages.get(message_id, ("", ""))
        details = {
            "upload_id": upload_id,
            "build": build,
            "attempt": attempt,
            "branch": branch,
            "message": message,
        }
        cells[case_id].append(
            Cell(
                commit, job, bool(on_default), cell_ran_at, failed, passed,
                incidents, bool(in_run), details,
            )
        )  # fmt: skip
        if signature and failed > incidents:
            signatures[case_id][signature] += 1
    return cells, signatures


@dataclass(slots=True)
class StateRow:
    """A CaseState row as plain data: model instances cost 50 µs apiece."""

    case_id: int
    project_id: int
    quarantined: bool = False
    status: str = "new"
    flake_score: float = 0.0
    flake_rate: float = 0.0
    runs: int = 0
    failures: int = 0
    flake_events: int = 0
    first_flaky_commit: str = ""
    broken_since_commit: str = ""
    duration_p50_ms: float | None = None
    duration_p95_ms: float | None = None
    duration_regressed: bool = False
    duration_regressed_since_commit: str = ""
    total_duration_ms: float = 0.0
    last_run_at: datetime | None = None
    evidence: list = field(default_factory=list)
    top_signatures: list = field(default_factory=list)
    recent_durations: dict | list = field(default_factory=list)


STATE_FIELDS = [
    "status", "flake_score", "flake_rate", "runs", "failures", "flake_events",
    "first_flaky_commit", "broken_since_commit", "duration_p50_ms",
    "duration_p95_ms", "duration_regressed", "duration_regressed_since_commit",
    "total_duration_ms", "last_run_at", "evidence", "top_signatures",
    "recent_durations",
]  # fmt: skip


def _update_case_states(
    last: Upload,
    appearances: dict[int, list[tuple[int, CaseRun, datetime]]],
    visible: Q,
) -> None:
    """Fold each test's runs (upload id, run, when; in run order) into its
    state, then judge it once on its failure rows."""
    states = _load_states(list(appearances))
    since = {case_id: runs[-1][2] - WINDOW for case_id, runs in appearances.items()}
    cells, signatures = _cells_by_case(since)
    jobs = _job_positions(
        last, {c.job for rows in cells.values() for c in rows}, visible,
        min(since.values()),
    )  # fmt: skip
    timed = []
    for case_id, runs in appearances.items():
        state = states.get(case_id)
        if state is None:
            state = states[case_id] = StateRow(case_id, last.project_id)
        points = []
        for upload_id, run, when in runs:
            state.runs += 1
            state.failures += int(run.first_failed)
            if state.last_run_at is None or when > state.last_run_at:
                state.last_run_at = when
            # Only passing runs: a failure's time (a timeout, a refused
            # connection in 10 ms) says nothing about how long the test takes.
            if run.passed and not run.failed and run.duration_ms is not None:
                points.append((upload_id, run.duration_ms))
            if run.duration_ms is not None and not run.skipped_only:
                state.total_duration_ms += run.duration_ms  # CI time, failures too
        timed.append((state, points))

        latest = state.last_run_at
        test_jobs = {
            job: [p for p in jobs.get(job, []) if p.ran_at <= latest]
            for job in {c.job for c in cells.get(case_id, [])}
        }
        verdict = judge(
            cells.get(case_id, []), test_jobs, runs=state.runs,
            quarantined=state.quarantined,
        )  # fmt: skip
        state.status = verdict.status
        state.flake_events = verdict.flake_events
        state.flake_rate = verdict.flake_rate
        state.flake_score = verdict.flake_score
        state.first_flaky_commit = verdict.first_flaky_commit
        state.broken_since_commit = verdict.broken_since_commit
        state.evidence = verdict.evidence
        counted = signatures.get(case_id)
        state.top_signatures = (
            [
                {"signature": signature, "count": count}
                for signature, count in counted.most_common(MAX_TOP_SIGNATURES)
            ]
            if counted
            else []
        )
    _fold_durations(timed)
    _save_states(list(states.values()))


def _load_states(case_ids: list[int]) -> dict[int, StateRow]:
    """Load the CaseState rows of these tests (only the fields folded into)."""
    rows = _select_by_ids(
        "SELECT case_id, project_id, runs, failures, total_duration_ms, last_run_at,"
        " quarantined, recent_durations FROM flakewatch_casestate"
        " WHERE case_id {ids}",
        case_ids,
    )
    states = {}
    for case_id, project_id, runs, failures, total, last, quarantined, series in rows:
        if isinstance(series, str):  # SQLite hands JSON back as text
            series = json.loads(series)
        if isinstance(last, str):
            last = datetime.fromisoformat(last)
        states[case_id] = StateRow(
            case_id=case_id, project_id=project_id, runs=runs, failures=failures,
            total_duration_ms=total, last_run_at=last, quarantined=bool(quarantined),
            recent_durations=series,
        )  # fmt: skip
    return states


def _save_states(states: list[StateRow]) -> None:
    names = ("case_id", "project_id", "quarantined", *STATE_FIELDS)
    if not _is_postgres():
        CaseState.objects.bulk_create(
            [CaseState(**{name: getattr(s, name) for name in names}) for s in states],
            update_conflicts=True,
            unique_fields=["case"],
            update_fields=STATE_FIELDS,
            batch_size=500,
        )
        return

    def dumps(value, empty="[]", encode=json.dumps):
        return encode(value) if value else empty

    rows = (
        (
            s.case_id, s.project_id, s.quarantined, s.status, s.flake_score,
            s.flake_rate, s.runs, s.failures, s.flake_events, s.first_flaky_commit,
            s.broken_since_commit, s.duration_p50_ms, s.duration_p95_ms,
            s.duration_regressed, s.duration_regressed_since_commit,
            s.total_duration_ms, s.last_run_at, dumps(s.evidence),
            dumps(s.top_signatures), dumps(s.recent_durations),
        )
        for s in states
    )  # fmt: skip
    _upsert_by_copy(
        CaseState._meta.db_table,
        list(names),
        "case_id",
        rows,
        ", ".join(f"{name} = excluded.{name}" for name in STATE_FIELDS),
    )


def _fold_durations(timed: list[tuple[object, list[tuple[int, float]]]]) -> None:
    """Fold new (upload id, duration) points into each test's or suite's series.

    Each row (StateRow or SuiteState) gets its series, p50/p95 and regression
    fields updated; no points leave the series as it was.
    """
    for row, points in timed:
        series = row.recent_durations
        if not isinstance(series, list) or len(series) < durations.HEADER:
            series = row.recent_durations = durations.new_series()
        for upload_id, duration_ms in points:
            durations.add_point(series, upload_id, duration_ms)
        row.duration_p50_ms, row.duration_p95_ms = durations.percentiles(series)
    since_uploads = {
        durations.regressed_since(row.recent_durations) for row, _ in timed
    }
    since_uploads.discard(None)
    commits = dict(
        Upload.objects.filter(pk__in=since_uploads).values_list("pk", "commit_sha")
    )
    for row, _ in timed:
        since = durations.regressed_since(row.recent_durations)
        row.duration_regressed = since is not None
        row.duration_regressed_since_commit = commits.get(since, "")


def _update_suite_states(
    upload: Upload, suite_durations: dict[str, tuple[float, int]], when: datetime
) -> None:
    if not suite_durations:
        return
    states = {
        s.name: s
        for s in SuiteState.objects.filter(
            project_id=upload.project_id, name__in=list(suite_durations)
        )
    }
    timed = []
    for name, (total_ms, tests) in suite_durations.items():
        state = states.get(name)
        if state is None:
            state = states[name] = SuiteState(project_id=upload.project_id, name=name)
        state.runs += 1
        state.tests = tests
        state.total_duration_ms += total_ms
        if state.last_run_at is None or when > state.last_run_at:
            state.last_run_at = when
        timed.append((state, [(upload.pk, total_ms)]))
    _fold_durations(timed)
    SuiteState.objects.bulk_create(
        states.values(),
        update_conflicts=True,
        unique_fields=["project", "name"],
        update_fields=[
            "runs", "tests", "total_duration_ms", "last_run_at", "recent_durations",
            "duration_p50_ms", "duration_p95_ms", "duration_regressed",
            "duration_regressed_since_commit",
        ],
    )  # fmt: skip


def suite_durations_of(
    executions: Iterable[StoredExecution], suite_of: Callable[[int], str]
) -> dict[str, tuple[float, int]]:
    """Sum the upload's test time per suite (exactly: math.fsum, any order)."""
    times: dict[str, list[float]] = defaultdict(list)
    tests: dict[str, set[int]] = defaultdict(set)
    for case_id, _, _, duration_ms, _ in executions:
        suite = suite_of(case_id)
        tests[suite].add(case_id)
        if duration_ms is not None:
            times[suite].append(duration_ms)
    return {name: (math.fsum(times[name]), len(ids)) for name, ids in tests.items()}


def recompute_project(project: Project, *, progress: Callable | None = None) -> int:
    """Rebuild every analytics table of ``project`` from raw results.

    Replays the done uploads in run order through ``apply_uploads``; keeps
    accepted quarantines. Owns its transaction; returns uploads replayed.
    """
    with transaction.atomic():
        quarantined = set(
            CaseState.objects.filter(project=project, quarantined=True).values_list(
                "case_id", flat=True
            )
        )
        CaseState.objects.filter(project=project).delete()
        SuiteState.objects.filter(project=project).delete()
        CommitFailure.objects.filter(project=project).delete()
        DailyCaseStat.objects.filter(case__project=project).delete()
        if quarantined:
            CaseState.objects.bulk_create(
                CaseState(case_id=pk, project=project, quarantined=True)
                for pk in quarantined
            )
        _lock_project(project.pk)
        uploads = list(
            Upload.objects.select_for_update(of=("self",))
            .filter(project=project, status=Upload.Status.DONE)
            .select_related("project")
            .annotate(ran=Coalesce("started_at", "received_at"))
            .order_by("ran", "pk")
        )
        suites = dict(project.cases.values_list("pk", "suite"))
        now = timezone.now()
        for batch in _batches(uploads):
            apply_uploads(batch, replay=True, suites=suites)
            for upload in batch:
                upload.analyzed_at = now
            Upload.objects.bulk_update(
                batch, ["analyzed_at", "duration_total_ms", "reran_for_flakes"]
            )
            if progress:
                progress(len(batch))
    return len(uploads)
