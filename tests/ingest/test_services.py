"""Processing, idempotency and the sweeper, called directly (no broker)."""

from __future__ import annotations

import base64
import gzip
import json
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from flakewatch import results
from flakewatch.models import (
    Case,
    CaseResult,
    CaseState,
    FailureMessage,
    Project,
    Upload,
)
from ingest import services
from tests.conftest import junit_bytes
from tests.factories import junit_report


def accept(project, report: bytes, *, build="1", job="unit", attempt=1, name="j.xml"):
    meta = services.UploadMetadata(
        commit_sha="abc123", branch="main", build=build, job=job, attempt=attempt
    )
    received = services.receive_file(name, [report], budget=10**8)
    upload, _ = services.accept_upload(project=project, meta=meta, files=[received])
    return upload


def redis_broker():
    """The real broker the suite runs against (make test sets CELERY_BROKER_URL)."""
    import redis
    from django.conf import settings

    assert settings.CELERY_BROKER_URL.startswith("redis://")
    return redis.Redis.from_url(settings.CELERY_BROKER_URL)


def queued_upload_ids(broker) -> list[int]:
    """Read the upload ids of the process_upload messages waiting in Redis."""
    return [pk for task, pk in sent_tasks(broker) if task == "ingest.process_upload"]


def sent_tasks(broker) -> list[tuple[str, int]]:
    """Read (task name, upload id) of every message waiting in Redis.

    Each queue is a list per priority level: "ingest", "celery" and their
    "<queue>\x06\x16<priority>" lists (kombu's naming).
    """
    tasks = []
    for key in sorted(broker.keys("ingest*") + broker.keys("celery*")):
        if broker.type(key) != b"list":
            continue
        for raw in broker.lrange(key, 0, -1):
            message = json.loads(raw)
            args, _kwargs, _embed = json.loads(base64.b64decode(message["body"]))
            tasks.append((message["headers"]["task"], args[0]))
    return tasks


def empty_queues(broker) -> None:
    for key in broker.keys("ingest*") + broker.keys("celery*"):
        broker.delete(key)


def result_rows(upload):
    return sorted(
        CaseResult.objects.filter(upload=upload).values_list(
            "case__suite",
            "case__classname",
            "case__name",
            "retry_index",
            "outcome",
            "duration_ms",
            "message__message",
        )
    )


def test_reprocessing_a_done_upload_changes_nothing(project):
    upload = accept(project, junit_report(10, failing={2}))
    services.process_upload(upload.pk)
    Upload.objects.filter(pk=upload.pk).update(status=Upload.Status.PROCESSING)
    # A redelivered task for an upload whose first run committed.
    Upload.objects.filter(pk=upload.pk).update(status=Upload.Status.DONE)
    services.process_upload(upload.pk)
    assert CaseResult.objects.filter(upload=upload).count() == 10


def test_upload_left_processing_by_a_dead_worker_completes_exactly_once(project):
    upload = accept(project, junit_report(50, failing={1, 2}))
    services._begin_processing(upload.pk)  # the dead worker got this far
    services.process_upload(upload.pk)
    upload.refresh_from_db()
    assert (upload.status, upload.tests_count, upload.failures_count) == ("done", 50, 2)
    assert upload.process_attempts == 2
    assert CaseResult.objects.filter(upload=upload).count() == 50


def test_upload_cut_short_too_often_is_failed_not_retried_forever(project, settings):
    settings.FLAKEWATCH_MAX_PROCESS_ATTEMPTS = 2
    upload = accept(project, junit_report(3))
    Upload.objects.filter(pk=upload.pk).update(
        status=Upload.Status.PROCESSING, process_attempts=2
    )
    services.process_upload(upload.pk)
    upload.refresh_from_db()
    assert upload.status == "failed"
    assert "abandoned after 2 attempts" in upload.errors[0]
    assert CaseResult.objects.count() == 0


def test_cases_and_messages_are_shared_across_uploads(project):
    first = accept(project, junit_report(20, failing={3}), build="1")
    second = accept(project, junit_report(20, failing={3}), build="2")
    services.process_upload(first.pk)
    services.process_upload(second.pk)
    assert Case.objects.filter(project=project).count() == 20
    assert FailureMessage.objects.filter(project=project).count() == 1
    assert CaseResult.objects.count() == 40


def test_same_test_twice_in_one_upload_gets_retry_indexes(project):
    report = junit_bytes(
        "action-junit-report/test_results/flaky_retries/flaky_success_first.xml"
    )
    upload = accept(project, report)
    services.process_upload(upload.pk)
    retries = list(
        CaseResult.objects.filter(upload=upload)
        .order_by("case_id", "retry_index")
        .values_list("case_id", "retry_index", "outcome")
    )
    assert [r[1] for r in retries] == [0, 1, 2]
    assert len({r[0] for r in retries}) == 1
    # pass first, then failure, then error, as the file lists them
    assert [r[2] for r in retries] == [0, 1, 2]


def test_copy_path_stores_what_the_orm_path_stores(project):
    assert connection.vendor == "postgresql"  # the suite runs on the real stack
    report = junit_bytes("test-reporter/__tests__/fixtures/jest-junit.xml")
    other = Project.objects.create(slug="orm", name="ORM")
    by_copy = accept(project, report)
    by_orm = accept(other, report)
    services.process_upload(by_copy.pk)
    rows = services.execution_rows([services.parse_report(report, filename="j.xml")])
    results._store_by_orm(by_orm, *rows, timezone.now())
    assert result_rows(by_copy) == result_rows(by_orm)
    assert len(result_rows(by_copy)) == 6


def test_failure_messages_are_stored_with_type_and_text(project):
    upload = accept(project, junit_report(3, failing={1}))
    services.process_upload(upload.pk)
    message = FailureMessage.objects.get()
    assert message.message == "assert 1 == 0"
    assert message.detail == "AssertionError: assert 1 == 0"


def test_payload_is_stored_compressed_and_restorable(project):
    report = junit_report(200)
    upload = accept(project, report)
    stored = upload.files.get()
    assert gzip.decompress(bytes(stored.payload_gz)) == report
    assert len(stored.payload_gz) < len(report) / 4


def test_sweeper_requeues_stale_queued_and_orphaned_processing(project, settings):
    settings.FLAKEWATCH_REQUEUE_AFTER_SECONDS = 60
    fresh = accept(project, junit_report(1), build="fresh")
    stale = accept(project, junit_report(1), build="stale")
    orphan = accept(project, junit_report(1), build="orphan")
    done = accept(project, junit_report(1), build="done")
    services.process_upload(done.pk)
    Upload.objects.filter(pk=stale.pk).update(
        status_changed_at=timezone.now() - timedelta(minutes=5)
    )
    Upload.objects.filter(pk=orphan.pk).update(status=Upload.Status.PROCESSING)
    broker = redis_broker()
    empty_queues(broker)
    assert services.requeue_stale_uploads() == 2
    sent = queued_upload_ids(broker)
    assert sorted(sent) == sorted([stale.pk, orphan.pk])
    assert fresh.pk not in sent
    stale.refresh_from_db()
    assert timezone.now() - stale.status_changed_at < timedelta(seconds=5)


def test_sweeper_resends_uploads_whose_task_could_not_be_sent_at_once(
    project, settings
):
    settings.FLAKEWATCH_REQUEUE_AFTER_SECONDS = 3600
    fresh = accept(project, junit_report(1), build="fresh")
    unsent = accept(project, junit_report(1), build="unsent")
    unanalysed = accept(project, junit_report(1), build="unanalysed")
    services.process_upload(unanalysed.pk)
    # What send_task_for records when the broker refuses the task.
    Upload.objects.filter(pk__in=[unsent.pk, unanalysed.pk]).update(
        dispatch_failed=True
    )
    broker = redis_broker()
    empty_queues(broker)
    assert services.requeue_stale_uploads() == 2
    assert sorted(sent_tasks(broker)) == [
        ("flakewatch.analyze_upload", unanalysed.pk),
        ("ingest.process_upload", unsent.pk),
    ]
    assert not Upload.objects.filter(dispatch_failed=True).exists()
    empty_queues(broker)
    assert services.requeue_stale_uploads() == 0  # not again while they wait
    assert fresh.pk not in queued_upload_ids(broker)


def test_ingest_now_stores_and_analyses_in_process_sending_no_task(project):
    broker = redis_broker()
    empty_queues(broker)
    meta = services.UploadMetadata(
        commit_sha="abc123", branch="main", build="9", job="unit"
    )
    files = [
        services.receive_file("j.xml", [junit_report(5, failing={2})], budget=10**6)
    ]
    upload = services.ingest_now(project, meta=meta, files=files)
    assert (upload.status, upload.tests_count, upload.failures_count) == ("done", 5, 1)
    assert upload.analyzed_at is not None
    assert CaseState.objects.filter(project=project).count() == 5
    again = services.ingest_now(project, meta=meta, files=files)
    assert again.pk == upload.pk
    assert CaseResult.objects.count() == 5
    assert sent_tasks(broker) == []


def test_ingest_command_backfills_files_in_process(project, tmp_path, capsys):
    unit = tmp_path / "unit.xml"
    unit.write_bytes(junit_report(6, failing={0}))
    integration = tmp_path / "it.xml.gz"
    integration.write_bytes(gzip.compress(junit_report(4, module="tests.it")))
    args = ["--project", "payments", "--commit", "abc", "--branch", "main"]
    args += ["--build", "7", "--job", "backfill", str(unit), str(integration)]
    call_command("ingest", *args)
    assert "done, 10 tests, 1 failures" in capsys.readouterr().out
    assert Upload.objects.get().analyzed_at is not None
    call_command("ingest", *args)
    assert "(already ingested)" in capsys.readouterr().out
    assert CaseResult.objects.count() == 10


def test_ingest_command_names_a_bad_field(project, tmp_path):
    report = tmp_path / "unit.xml"
    report.write_bytes(junit_report(1))
    args = ["--project", "payments", "--commit", "abc", "--branch", "main"]
    args += ["--build", "7", "--job", "j", "--attempt", "0", str(report)]
    with pytest.raises(CommandError, match="attempt must be a whole number"):
        call_command("ingest", *args)
    assert Upload.objects.count() == 0
