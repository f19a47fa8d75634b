"""Workers cut short on the real stack: exact runs and verdicts afterwards.

A worker SIGKILLed inside the analysis transaction, and a worker whose
database connection is terminated (``pg_terminate_backend``) inside the
ingest transaction. Each waits for an observable state (the analytics
advisory lock held, the upload row locked by the worker's write) before
cutting, and checks afterwards that the cut came in time to test anything.
"""

from __future__ import annotations

import gzip

import pytest
from django.db import connection

from flakewatch.analysis import ANALYTICS_LOCK, recompute_project
from flakewatch.models import CaseResult, CaseState, Upload
from ingest.services import requeue_stale_uploads
from support import stack
from tests.factories import junit_report
from tests.test_pipeline import curl_upload, upload_status, wait_for_status

pytestmark = [pytest.mark.stack, pytest.mark.django_db(transaction=True)]

VERDICT = (
    "case__name",
    "status",
    "runs",
    "failures",
    "flake_events",
    "flake_score",
    "flake_rate",
    "first_flaky_commit",
    "broken_since_commit",
    "duration_p50_ms",
    "duration_p95_ms",
)


def other_backends(sql: str, params: list) -> list[int]:
    """Return the pids of other sessions that ``sql`` (over pg_locks) finds."""
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [pid for (pid,) in cursor.fetchall()]


def analytics_lock_holders(project_id: int) -> list[int]:
    # pg_advisory_xact_lock(int, int): classid, objid, objsubid 2.
    return other_backends(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
        " AND classid = %s AND objid = %s AND objsubid = 2"
        " AND pid <> pg_backend_pid()",
        [ANALYTICS_LOCK, project_id],
    )


def upload_row_lockers() -> list[int]:
    """Return the sessions inside a write transaction on an upload row.

    ``SELECT ... FOR UPDATE`` holds a RowShareLock on the table until the
    transaction ends.
    """
    return other_backends(
        "SELECT l.pid FROM pg_locks l JOIN pg_class c ON c.oid = l.relation"
        " WHERE c.relname = 'flakewatch_upload' AND l.mode = 'RowShareLock'"
        " AND l.granted AND l.pid <> pg_backend_pid()",
        [],
    )


def verdicts(project_id: int) -> list[tuple]:
    return list(
        CaseState.objects.filter(project_id=project_id)
        .order_by("case__name")
        .values_list(*VERDICT)
    )


def test_worker_killed_during_analysis_leaves_exact_runs_and_verdicts(
    live_server, project, upload_token, start_worker, tmp_path, settings
):
    count = 30_000
    # test_1 fails and then passes on a re-run of the same commit and job;
    # test_2 fails on every run; the rest pass.
    runs = [
        ("c1", "1", {1, 2}),
        ("c1", "2", {2}),
        ("c2", "1", {1, 2}),
    ]
    ids = []
    for i, (commit, attempt, failing) in enumerate(runs):
        path = tmp_path / f"run{i}.xml.gz"
        path.write_bytes(gzip.compress(junit_report(count, failing=failing), 1))
        _, body = curl_upload(
            live_server.url, upload_token, path, build=commit, attempt=attempt
        )
        ids.append(int(body["id"]))
    # No worker yet: the first one ingests all three, then analyses them as
    # one batch, inside one transaction under the project's advisory lock.
    first = start_worker()
    first.wait_for(
        lambda: analytics_lock_holders(project.pk), 180, "the analysis to take its lock"
    )
    first.kill()
    # A backend in the middle of a statement sees its client gone only when
    # the statement ends; until then it holds the lock, and could commit
    # only if the COMMIT had been sent before the kill.
    stack.wait_until(
        lambda: not analytics_lock_holders(project.pk),
        180,
        "the killed worker's transaction to end",
    )
    analysed = Upload.objects.filter(pk__in=ids, analyzed_at__isnull=False)
    assert not analysed.exists(), "the kill came too late to test anything"
    assert not CaseState.objects.filter(project=project).exists()

    # The killed task stays unacked in Redis until its visibility timeout:
    # the new worker's sweep on connect re-sends the analysis. The sweep here
    # (what beat runs each minute) covers a start-up sweep that came before
    # the uploads were FLAKEWATCH_REQUEUE_AFTER_SECONDS old; a task sent
    # twice finds the uploads analysed and returns.
    start_worker()
    settings.FLAKEWATCH_REQUEUE_AFTER_SECONDS = 0
    requeue_stale_uploads()
    stack.wait_until(
        lambda: (
            Upload.objects.filter(pk__in=ids, analyzed_at__isnull=True).count() == 0
        ),
        180,
        "every upload to be analysed after the restart",
    )
    assert CaseResult.objects.count() == 3 * count
    after = verdicts(project.pk)
    assert len(after) == count
    by_name = {row[0]: row for row in after}
    assert {row[2] for row in after} == {3}  # every test: three runs, once each
    assert by_name["test_1"][3] == 2 and by_name["test_2"][3] == 3
    assert sum(row[3] for row in after) == 5
    # test_1's fail-then-pass on one commit and job is one flake event;
    # three runs are too few for a verdict yet, so none is asserted here.
    assert by_name["test_1"][4] == 1
    assert sum(row[4] for row in after) == 1
    # Replaying every upload from raw rows gives the same answers.
    recompute_project(project)
    assert verdicts(project.pk) == after


def test_database_connection_terminated_mid_ingest_completes_with_exact_counts(
    live_server, upload_token, start_worker, tmp_path
):
    count = 100_000
    report = tmp_path / "big.xml.gz"
    report.write_bytes(gzip.compress(junit_report(count, failing={5, 50, 500}), 1))
    worker = start_worker()
    pool = stack.pool_children(worker.pid)
    _, body = curl_upload(live_server.url, upload_token, report)
    upload_id = int(body["id"])
    # The worker's write transaction: the upload is processing (committed)
    # and its session holds the upload row's lock until the commit.
    pids = worker.wait_for(
        lambda: (
            upload_status(upload_id).status == "processing" and upload_row_lockers()
        ),
        120,
        "the worker's ingest transaction",
    )
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [pids[0]])
        assert cursor.fetchone() == (True,)
    assert upload_status(upload_id).status == "processing", "terminated too late"
    assert CaseResult.objects.count() == 0

    upload = wait_for_status(upload_id, "done", timeout=180)
    assert (upload.tests_count, upload.failures_count) == (count, 3)
    assert upload.process_attempts == 2
    assert CaseResult.objects.filter(upload_id=upload_id).count() == count
    stack.wait_until(
        lambda: upload_status(upload_id).analyzed_at is not None, 180, "the analysis"
    )
    states = CaseState.objects.filter(project_id=upload.project_id)
    assert states.count() == count and set(states.values_list("runs", flat=True)) == {1}
    assert worker.running() and stack.pool_children(worker.pid) == pool
