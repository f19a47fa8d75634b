"""Delete raw data past its retention: stored report files, raw executions.

What is pruned: ``UploadFile`` rows (the gzip reports, the largest data) of
finished uploads older than FLAKEWATCH_RAW_PAYLOAD_RETENTION_DAYS, by
arrival; ``CaseResult`` rows (the raw executions) of analysed uploads that
ran more than FLAKEWATCH_RAW_RESULT_RETENTION_DAYS ago, each upload then
marked ``results_pruned_at``. 0 days keeps them forever.

What never is: uploads themselves, tests (``Case``), failure messages,
rollups (``DailyCaseStat``), per-test and per-suite state (verdicts,
scores, duration series), the evidence of verdicts (``CommitFailure``).
Each is written from raw rows once and never re-read from them by the
incremental path, so verdicts, scores and the API's lists stay as they were;
a test's detail then lists only the runs still stored, and ``recompute``
can replay only those.

Each batch is its own short transaction and locks only the uploads it takes
(``skip_locked``: an upload a worker or ``recompute`` holds is left for the
next run), so pruning never blocks ingest or analysis for long.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from flakewatch.models import CaseResult, Upload, UploadFile

logger = logging.getLogger(__name__)

# Bounds of one transaction: report files, and uploads with their executions.
PAYLOAD_BATCH_FILES = 500
RESULT_BATCH_UPLOADS = 200
RESULT_BATCH_EXECUTIONS = 50_000


@dataclass(frozen=True)
class PruneCounts:
    """What one prune deleted."""

    payload_files: int = 0
    result_uploads: int = 0
    executions: int = 0


def prune_raw_data(*, now: datetime | None = None) -> PruneCounts:
    """Prune report files and executions past their retention settings.

    Idempotent; safe to run while workers ingest and analyse. Owns its
    transactions (one per batch). Returns what was deleted.
    """
    now = now or timezone.now()
    files = uploads = executions = 0
    payload_days = settings.FLAKEWATCH_RAW_PAYLOAD_RETENTION_DAYS
    if payload_days:
        files = prune_payloads(before=now - timedelta(days=payload_days))
    result_days = settings.FLAKEWATCH_RAW_RESULT_RETENTION_DAYS
    if result_days:
        uploads, executions = prune_results(
            before=now - timedelta(days=result_days), now=now
        )
    counts = PruneCounts(files, uploads, executions)
    logger.info(
        "pruned %s report files and %s executions of %s uploads",
        counts.payload_files,
        counts.executions,
        counts.result_uploads,
    )
    return counts


def prune_payloads(*, before: datetime, batch: int = PAYLOAD_BATCH_FILES) -> int:
    """Delete the report files of finished uploads received before ``before``.

    Queued and processing uploads keep theirs (they are still to be parsed).
    Returns files deleted; one transaction per ``batch`` files.
    """
    deleted = 0
    while True:
        with transaction.atomic():
            ids = list(
                UploadFile.objects.select_for_update(skip_locked=True, of=("self",))
                .filter(
                    upload__received_at__lt=before,
                    upload__status__in=[Upload.Status.DONE, Upload.Status.FAILED],
                )
                .order_by("pk")
                .values_list("pk", flat=True)[:batch]
            )
            if not ids:
                return deleted
            UploadFile.objects.filter(pk__in=ids).delete()
        deleted += len(ids)


def prune_results(
    *,
    before: datetime,
    now: datetime,
    max_uploads: int = RESULT_BATCH_UPLOADS,
    max_executions: int = RESULT_BATCH_EXECUTIONS,
) -> tuple[int, int]:
    """Delete the executions of analysed uploads that ran before ``before``.

    An upload not yet analysed keeps them: the analysis reads them. Marks
    each pruned upload ``results_pruned_at = now``. Returns (uploads,
    executions) pruned; one transaction per batch of at most ``max_uploads``
    uploads and about ``max_executions`` executions.
    """
    uploads = executions = 0
    while True:
        with transaction.atomic():
            batch = _prunable_uploads(before, max_uploads, max_executions)
            if not batch:
                return uploads, executions
            # Uses caseresult_upload_idx; CaseResult has no relations and no
            # signals, so this is one DELETE.
            deleted, _ = CaseResult.objects.filter(upload_id__in=batch).delete()
            Upload.objects.filter(pk__in=batch).update(results_pruned_at=now)
        uploads += len(batch)
        executions += deleted


def _prunable_uploads(
    before: datetime, max_uploads: int, max_executions: int
) -> list[int]:
    """Lock and return the oldest prunable uploads, within the batch bounds."""
    rows = (
        # Uses upload_unpruned_idx (run_at; partial: done, not pruned).
        Upload.objects.select_for_update(skip_locked=True)
        .filter(
            status=Upload.Status.DONE,
            results_pruned_at__isnull=True,
            analyzed_at__isnull=False,
            run_at__lt=before,
        )
        .order_by("run_at")
        .values_list("pk", "tests_count")[:max_uploads]
    )
    batch: list[int] = []
    total = 0
    for pk, tests in rows:
        if batch and total + tests > max_executions:
            break
        batch.append(pk)
        total += tests
    return batch
