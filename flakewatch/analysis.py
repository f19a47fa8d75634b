"""Add uploads to the analytics in run order, and replay them all (recompute).

The orchestration of the write path; the work itself is in the modules named
for it. ``analyze_upload`` (the worker's task, after an upload's results
commit) takes the project's waiting done uploads in run order (``run_at``),
in batches, through ``apply_uploads`` and marks them analysed in the same
transaction, so each counts exactly once. ``apply_uploads`` touches only the
tests and suites in the uploads:

1. ``daily_stats``: add the runs, first-attempt failures and time.
2. ``evidence``, per upload: each failing test's (commit, job) failure row,
   with the passes seen on the same commit and job; the upload's test time
   and whether it re-ran a job for flakes.
3. ``states``, once per test for the batch: counts, duration series and the
   verdict (``analytics.verdicts.judge``) with its evidence; per upload, the
   suites' duration series.

A verdict reads failures other uploads wrote, so they must be committed, not
in flight: each transaction here first takes the project's analytics lock
(on PostgreSQL an advisory lock; ``lock_project``), once.

``recompute_project`` empties these tables and replays every done upload in
run order through ``apply_uploads``: the same code, the same order, so the
same answers as the incremental path.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from flakewatch import (
    daily_stats,
    db,
    evidence,
    metrics,
    notifications,
    quarantine,
    states,
)
from flakewatch.analytics.runs import fold_runs, incident_cases, suite_durations_of
from flakewatch.models import (
    Case,
    CaseState,
    CommitFailure,
    DailyCaseStat,
    Project,
    SuiteState,
    Upload,
)
from flakewatch.results import stored_executions

# Key space of the advisory locks: flakewatch's analytics ("fl"), per project.
ANALYTICS_LOCK = 0x666C
STATE_BATCH = 10_000
# A backlog is analysed in batches of at most this many uploads and executions
# (by tests_count): enough to amortise the per-test state writes, small
# enough to bound a batch's memory and transaction.
MAX_BATCH_UPLOADS = 50
MAX_BATCH_EXECUTIONS = 200_000
# Written on the uploads with their analysed mark.
UPLOAD_TOTALS = ["analyzed_at", "duration_total_ms", "reran_for_flakes"]


def lock_project(project_id: int) -> None:
    """Serialise the analytics of one project until the transaction ends."""
    db.advisory_lock(ANALYTICS_LOCK, project_id)


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
    with metrics.ANALYSIS_SECONDS.time():
        while True:
            with transaction.atomic():
                # The project lock first, then the rows: recompute takes them
                # in this order too, so the two never deadlock.
                lock_project(project_id)
                if not waiting.exists():
                    return
                batch = _waiting_batch(project_id)
                changes = apply_uploads(batch)
                _mark_analysed(batch, timezone.now())
                notifications.record_changes(batch[-1], changes)
            if any(upload.pk == upload_id for upload in batch):
                return


def _waiting_batch(project_id: int) -> list[Upload]:
    """Lock and return the project's oldest done, unanalysed uploads."""
    waiting = (
        # of=self: locking the joined project row too would stall every new
        # upload of the project (its foreign key check) meanwhile. Uses
        # upload_waiting_idx (project, run_at, id; partial: done and not
        # analysed), which gives this order.
        Upload.objects.select_for_update(of=("self",))
        .select_related("project")
        .filter(
            project_id=project_id,
            status=Upload.Status.DONE,
            analyzed_at__isnull=True,
        )
        .order_by("run_at", "pk")
    )
    return next(_batches(waiting[:MAX_BATCH_UPLOADS]), [])


def _batches(uploads: Iterable[Upload]) -> Iterator[list[Upload]]:
    """Cut uploads (in run order) into batches.

    A batch holds at most MAX_BATCH_UPLOADS uploads and MAX_BATCH_EXECUTIONS
    tests; an upload larger than that is a batch of its own.
    """
    batch: list[Upload] = []
    tests = 0
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


def _mark_analysed(batch: list[Upload], now: datetime) -> None:
    for upload in batch:
        upload.analyzed_at = now
    Upload.objects.bulk_update(batch, UPLOAD_TOTALS)


def visible_uploads(upload: Upload, *, replay: bool, applied: list[int]) -> Q:
    """Return the uploads whose results ``upload`` may build on.

    Those already in the analytics (``applied``: this one and those before
    it in its batch), as a replay in run order sees them: in a replay, the
    done uploads that ran before it.
    """
    if not replay:
        return Q(analyzed_at__isnull=False) | Q(pk__in=applied)
    return Q(status=Upload.Status.DONE) & (
        Q(run_at__lt=upload.run_at) | Q(run_at=upload.run_at, pk__lte=upload.pk)
    )


def apply_uploads(
    uploads: list[Upload],
    *,
    replay: bool = False,
    suites: dict[int, str] | None = None,
) -> list[tuple[int, str, str]]:
    """Add one project's uploads, in run order, to the analytics.

    The caller owns the transaction, holds the project's lock
    (``lock_project``) and marks the uploads analysed; each must be applied
    once, which the caller's mark guarantees. Per upload, in order: failure
    evidence, totals, suite series. Per test, once for all of them:
    counters, duration series and the verdict. That is what applying them
    one at a time gives, because a test's verdict reads only its own
    failure rows, which only uploads that ran it change; a backlog of
    uploads of one test suite then costs one state update per test, not one
    per upload. ``replay`` (recompute) lets each upload see only those that
    ran before it, as the incremental path saw them. ``suites`` maps case id
    to suite name (default: read per upload). Return the verdicts that
    changed, as (case id, old status, new status).
    """
    if not uploads:
        return []
    suites = {} if suites is None else suites
    appearances: dict[int, states.Appearances] = defaultdict(list)
    daily: daily_stats.DailyCounts = {}
    applied: list[int] = []
    for upload in uploads:
        executions = stored_executions(upload.pk)
        runs = fold_runs(executions)
        when = upload.run_at
        applied.append(upload.pk)
        visible = visible_uploads(upload, replay=replay, applied=applied)
        daily_stats.count_daily_stats(daily, runs, when)
        incidents = incident_cases(runs, evidence.signatures_of(runs))
        evidence.record_failures(upload, runs, incidents, when, visible)
        evidence.update_upload_totals(upload, runs)
        for case_id, run in runs.items():
            appearances[case_id].append((upload.pk, run, when))
        unknown = [case_id for case_id in runs if case_id not in suites]
        if unknown:  # a backlog of one suite's uploads reads its names once
            suites.update(_suites_of(unknown))
        suite_totals = suite_durations_of(executions, suites.__getitem__)
        states.update_suite_states(upload, suite_totals, when)
    daily_stats.save_daily_stats(daily)
    visible = visible_uploads(uploads[-1], replay=replay, applied=applied)
    # In slices, so a 100,000-test upload never holds every state at once.
    case_ids = list(appearances)
    changes = []
    for start in range(0, len(case_ids), STATE_BATCH):
        batch = {
            case_id: appearances[case_id]
            for case_id in case_ids[start : start + STATE_BATCH]
        }
        changes += states.update_case_states(uploads[-1], batch, visible)
    # Suggestions and quarantine judgements follow the new verdicts.
    quarantine.refresh_after_batch(uploads[-1].project, case_ids, visible=visible)
    return changes


def _suites_of(case_ids: list[int]) -> dict[int, str]:
    return dict(
        db.select_by_ids(
            f"SELECT id, suite FROM {db.table(Case)} WHERE id {{ids}}", case_ids
        )
    )


def recompute_project(
    project: Project, *, progress: Callable[[int], object] | None = None
) -> int:
    """Rebuild every analytics table of ``project`` from raw results.

    Replays the done uploads in run order through ``apply_uploads``; keeps
    accepted quarantines. Owns its transaction; returns uploads replayed.
    ``progress`` is called with the number of uploads of each batch done.
    """
    with transaction.atomic():
        # The lock before any row, as analyze_upload takes them.
        lock_project(project.pk)
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
        uploads = list(
            # Every done upload of the project, sorted: no index needed for
            # a read of them all.
            Upload.objects.select_for_update(of=("self",))
            .filter(project=project, status=Upload.Status.DONE)
            .select_related("project")
            .order_by("run_at", "pk")
        )
        suites = dict(project.cases.values_list("pk", "suite"))
        now = timezone.now()
        for batch in _batches(uploads):
            apply_uploads(batch, replay=True, suites=suites)
            _mark_analysed(batch, now)
            if progress:
                progress(len(batch))
    return len(uploads)
