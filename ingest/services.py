"""Accept uploads durably, process them idempotently, sweep up stragglers.

Life of an upload: ``accept_upload`` stores the row and its gzip payloads in
one transaction and enqueues processing on commit, so a 202 always means
stored. ``process_upload`` marks it processing (committed, so the status
endpoint shows it), then parses and writes every result and the DONE mark in
one transaction under the upload's row lock: a redelivered or duplicate task
either waits for that lock and finds DONE, or finds nothing written.
``requeue_stale_uploads`` re-enqueues uploads whose dispatch was lost (broker
down) or whose worker died.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerError

from flakewatch import db, results
from flakewatch.analytics.signatures import failure_signature
from flakewatch.models import Project, Upload, UploadFile
from ingest.parsing import ParsedReport, ReportError, collector_paused, parse_report

logger = logging.getLogger(__name__)

GZIP_MAGIC = b"\x1f\x8b"
# Level 1 compresses XML about 8:1 at several times the speed of level 6,
# which keeps the 202 fast for large reports.
STORE_COMPRESSLEVEL = 1
READ_CHUNK = 1 << 20


class UploadRejected(Exception):
    """The request cannot become an upload; ``status`` is the HTTP code."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


@dataclass(frozen=True)
class UploadMetadata:
    commit_sha: str
    branch: str
    build: str
    job: str
    attempt: int = 1
    build_url: str = ""
    started_at: datetime | None = None


@dataclass(frozen=True)
class ReceivedFile:
    filename: str
    content_sha256: str
    size_bytes: int
    payload_gz: bytes


REQUIRED_FIELDS = ("commit", "branch", "build", "job")
FIELD_LIMITS = {"commit": 64, "branch": 255, "build": 255, "job": 255}


def read_metadata(fields) -> UploadMetadata:
    """Validate upload fields (a QueryDict or dict of str) into metadata."""
    values = {
        key: (fields.get(key) or "").strip()
        for key in (*REQUIRED_FIELDS, "attempt", "build_url", "started_at")
    }
    missing = [key for key in REQUIRED_FIELDS if not values[key]]
    if missing:
        raise UploadRejected(
            400,
            f"Missing {', '.join(missing)}: send commit, branch, build and job as form "
            "fields (-F commit=...) or query parameters (?commit=...).",
        )
    for key, limit in FIELD_LIMITS.items():
        if len(values[key]) > limit:
            raise UploadRejected(400, f"{key} is longer than {limit} characters.")
    attempt = 1
    if values["attempt"]:
        try:
            attempt = int(values["attempt"])
        except ValueError:
            attempt = 0
        if not 1 <= attempt <= 10_000:
            raise UploadRejected(
                400,
                "attempt must be a whole number from 1 (the CI job's re-run counter).",
            )
    build_url = values["build_url"]
    if build_url and (
        len(build_url) > 1000 or not build_url.startswith(("http://", "https://"))
    ):
        raise UploadRejected(
            400, "build_url must be an http(s) URL of at most 1000 characters."
        )
    started_at = None
    if values["started_at"]:
        try:
            started_at = datetime.fromisoformat(values["started_at"])
        except ValueError:
            raise UploadRejected(
                400, "started_at must be an ISO 8601 time, e.g. 2026-05-01T10:00:00Z."
            ) from None
        if timezone.is_naive(started_at):
            started_at = timezone.make_aware(started_at, timezone.UTC)
    return UploadMetadata(
        commit_sha=values["commit"],
        branch=values["branch"],
        build=values["build"],
        job=values["job"],
        attempt=attempt,
        build_url=build_url,
        started_at=started_at,
    )


def too_large(limit: int) -> UploadRejected:
    return UploadRejected(
        413,
        f"The reports exceed the {limit // (1024 * 1024)} MB limit after decompression; "
        "upload them in separate requests or raise FLAKEWATCH_MAX_UPLOAD_BYTES.",
    )


def receive_file(
    filename: str, chunks: Iterable[bytes], *, budget: int
) -> ReceivedFile:
    """Read one report file (plain or gzip) into its stored form.

    ``budget`` is how many decompressed bytes may still be accepted; a gzip
    bomb is stopped while decompressing, as soon as it passes the budget.
    """
    chunks = iter(chunks)
    first = b""
    for first in chunks:
        if first:
            break
    digest = hashlib.sha256()
    size = 0
    if first.startswith(GZIP_MAGIC):
        compressed = [first]
        decompressor = zlib.decompressobj(wbits=31)
        try:
            for chunk in _chain(first, chunks, keep=compressed):
                data = chunk
                while data:
                    # max_length bounds each step's output: never more than the
                    # remaining budget plus one byte is inflated in memory.
                    out = decompressor.decompress(data, budget - size + 1)
                    size += len(out)
                    if size > budget:
                        raise too_large(settings.FLAKEWATCH_MAX_UPLOAD_BYTES)
                    digest.update(out)
                    data = decompressor.unconsumed_tail
                    if decompressor.eof:
                        if decompressor.unused_data.strip(b"\0"):
                            # Another gzip member follows (concatenated .gz).
                            data = decompressor.unused_data
                            decompressor = zlib.decompressobj(wbits=31)
                        else:
                            data = b""
        except zlib.error as exc:
            raise UploadRejected(
                400, f"{filename} looks gzip-compressed but is not valid gzip ({exc})."
            ) from None
        if not decompressor.eof:
            raise UploadRejected(400, f"{filename} is a truncated gzip file.")
        payload = b"".join(compressed)
    else:
        compressor = zlib.compressobj(STORE_COMPRESSLEVEL, zlib.DEFLATED, 31)
        parts = []
        for chunk in _chain(first, chunks):
            size += len(chunk)
            if size > budget:
                raise too_large(settings.FLAKEWATCH_MAX_UPLOAD_BYTES)
            digest.update(chunk)
            parts.append(compressor.compress(chunk))
        parts.append(compressor.flush())
        payload = b"".join(parts)
    name = filename.removesuffix(".gz") if first.startswith(GZIP_MAGIC) else filename
    return ReceivedFile(name[:500] or "report.xml", digest.hexdigest(), size, payload)


def _chain(first: bytes, rest, keep: list | None = None):
    yield first
    for chunk in rest:
        if keep is not None:
            keep.append(chunk)
        yield chunk


def idempotency_key(meta: UploadMetadata, files: list[ReceivedFile]) -> str:
    """Key an upload by job attempt and report contents, not by HTTP body bytes."""
    parts = [
        meta.build,
        meta.job,
        str(meta.attempt),
        *sorted(f.content_sha256 for f in files),
    ]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def accept_upload(
    *, project: Project, meta: UploadMetadata, files: list[ReceivedFile]
) -> tuple[Upload, bool]:
    """Store an upload and enqueue it on commit; return (upload, created).

    Idempotent: the same reports for the same (build, job, attempt) return
    the upload stored first, with ``created`` False, and enqueue nothing.
    Owns its transaction.
    """
    if not files:
        raise UploadRejected(
            400,
            "No report attached: send it as -F file=@junit.xml or as the request body.",
        )
    key = idempotency_key(meta, files)
    try:
        with transaction.atomic():
            upload = Upload.objects.create(
                project=project,
                commit_sha=meta.commit_sha,
                branch=meta.branch,
                build=meta.build,
                job=meta.job,
                attempt=meta.attempt,
                build_url=meta.build_url,
                started_at=meta.started_at,
                idempotency_key=key,
            )
            UploadFile.objects.bulk_create(
                UploadFile(
                    upload=upload,
                    filename=f.filename,
                    content_sha256=f.content_sha256,
                    size_bytes=f.size_bytes,
                    payload_gz=f.payload_gz,
                )
                for f in files
            )
            transaction.on_commit(lambda: enqueue_upload(upload.pk))
    except IntegrityError:
        existing = Upload.objects.filter(project=project, idempotency_key=key).first()
        if existing is None:  # not the idempotency constraint after all
            raise
        return existing, False
    logger.info("upload accepted", extra={"upload_id": upload.pk})
    return upload, True


def enqueue_upload(upload_id: int) -> bool:
    """Send the processing task; on a broker failure log it and return False.

    The sweeper re-enqueues whatever could not be sent, so a request never
    waits on a broker that is down.
    """
    from ingest.tasks import process_upload_task

    try:
        process_upload_task.apply_async((upload_id,), retry=False)
    except (BrokerError, ConnectionError, TimeoutError):
        logger.warning(
            "upload not enqueued, the sweeper will retry",
            extra={"upload_id": upload_id},
        )
        return False
    return True


def enqueue_analysis(upload_id: int) -> bool:
    """Send the analytics task; on a broker failure the sweeper resends it."""
    from flakewatch.tasks import analyze_upload_task

    try:
        analyze_upload_task.apply_async((upload_id,), retry=False)
    except (BrokerError, ConnectionError, TimeoutError):
        logger.warning(
            "analysis not enqueued, the sweeper will retry",
            extra={"upload_id": upload_id},
        )
        return False
    return True


def _begin_processing(upload_id: int) -> bool:
    """Mark the upload processing in its own commit; False if nothing to do."""
    with transaction.atomic():
        upload = Upload.objects.select_for_update().filter(pk=upload_id).first()
        if upload is None or upload.status in (
            Upload.Status.DONE,
            Upload.Status.FAILED,
        ):
            return False
        now = timezone.now()
        if upload.process_attempts >= settings.FLAKEWATCH_MAX_PROCESS_ATTEMPTS:
            upload.status = Upload.Status.FAILED
            upload.errors = [
                f"Processing was abandoned after {upload.process_attempts} attempts "
                "(each was cut short); check the worker logs."
            ]
            upload.status_changed_at = upload.finished_at = now
            upload.save(
                update_fields=["status", "errors", "status_changed_at", "finished_at"]
            )
            return False
        upload.status = Upload.Status.PROCESSING
        upload.process_attempts += 1
        upload.status_changed_at = now
        upload.save(update_fields=["status", "process_attempts", "status_changed_at"])
        return True


def process_upload(upload_id: int) -> None:
    """Parse a stored upload and write its results; safe to repeat.

    Owns its transactions. Unreadable reports mark the upload failed (they
    will not improve on retry); database errors propagate for the task's
    retry.
    """
    if not _begin_processing(upload_id):
        return
    with transaction.atomic():
        upload = Upload.objects.select_for_update().get(pk=upload_id)
        if upload.status != Upload.Status.PROCESSING:
            return  # a duplicate task finished it while this one waited
        reports, problems = [], []
        files = upload.files.order_by("pk").values_list("filename", "payload_gz")
        for filename, payload_gz in files.iterator():
            try:
                reports.append(
                    parse_report(gzip.decompress(payload_gz), filename=filename)
                )
            except ReportError as exc:
                problems.append(str(exc))
        if problems:
            upload.status = Upload.Status.FAILED
            upload.errors = problems
        else:
            store_reports(upload, reports, now=timezone.now())
            # The analytics follow in their own task and transaction, so a
            # large upload's results are committed without waiting for them.
            transaction.on_commit(lambda: enqueue_analysis(upload_id))
            upload.status = Upload.Status.DONE
            upload.tests_count = sum(r.testcases for r in reports)
            upload.failures_count = sum(r.failures for r in reports)
            upload.errors = [e for r in reports for e in r.errors]
            upload.warnings = [w for r in reports for w in r.warnings]
        upload.status_changed_at = upload.finished_at = timezone.now()
        upload.save(
            update_fields=[
                "status",
                "tests_count",
                "failures_count",
                "errors",
                "warnings",
                "status_changed_at",
                "finished_at",
            ]
        )
    logger.info("upload %s", upload.status, extra={"upload_id": upload_id})


def store_reports(
    upload: Upload, reports: list[ParsedReport], *, now: datetime
) -> None:
    """Store parsed reports as ``upload``'s results; the caller owns the transaction."""
    # One object per execution and no cycles: the collector's passes over
    # them would only cost time, as in parsing.
    with collector_paused():
        cases, messages, rows = execution_rows(reports)
        results.store_results(
            upload=upload, cases=cases, messages=messages, executions=rows, now=now
        )


def execution_rows(
    reports: list[ParsedReport],
) -> tuple[dict, dict, list[results.ExecutionRow]]:
    """Reduce parsed reports to (cases, messages, rows) for ``store_results``.

    A test seen more than once in one upload (in-run reruns, repeated
    testcases, the same test in two files) gets retry_index 0, 1, 2... in
    document order. This loop runs once per execution: it keeps to locals
    and plain tuples.
    """
    cases: dict[bytes, tuple[str, str, str, str]] = {}
    messages: dict[bytes, tuple[str, str, str, str]] = {}
    rows: list[results.ExecutionRow] = []
    append = rows.append
    repeats: dict[bytes, int] = {}  # identities seen more than once: last retry
    identity_hash = results.identity_hash
    for report in reports:
        for e in report.executions:
            fields = (e.suite, e.classname, e.name, e.file)
            identity = identity_hash(*fields)
            if identity in cases:
                retry = repeats[identity] = repeats.get(identity, 0) + 1
            else:
                cases[identity] = fields
                retry = 0
            digest = None
            if e.message or e.detail or e.kind:
                digest = results.message_digest(e.kind, e.message, e.detail)
                if digest not in messages:
                    signature = failure_signature(e.message, e.detail)
                    messages[digest] = (e.kind, e.message, e.detail, signature)
            append((identity, retry, e.outcome, e.duration_ms, digest))
    return cases, messages, rows


def requeue_stale_uploads() -> int:
    """Re-enqueue uploads left queued too long or orphaned mid-processing,
    and done uploads whose analytics task was lost.

    An upload being processed (or analysed) is row-locked by its worker for
    the whole write, so a PROCESSING row that can be locked has lost its
    worker (the database released the lock when the worker's connection
    died). Returns how many tasks were sent. PostgreSQL only: the embedded
    default runs tasks inline and has no worker to lose.
    """
    if not db.is_postgresql():
        return 0
    cutoff = timezone.now() - timedelta(
        seconds=settings.FLAKEWATCH_REQUEUE_AFTER_SECONDS
    )
    with transaction.atomic():
        # Uses upload_unfinished_idx (partial, status in queued/processing).
        stale = list(
            Upload.objects.select_for_update(skip_locked=True)
            .filter(
                Q(status=Upload.Status.QUEUED, status_changed_at__lt=cutoff)
                | Q(status=Upload.Status.PROCESSING)
            )
            .order_by("status_changed_at")
            .values_list("pk", "status")[:1000]
        )
        # Uses upload_unanalyzed_idx (partial, done and not analysed).
        unanalyzed = list(
            Upload.objects.select_for_update(skip_locked=True)
            .filter(
                status=Upload.Status.DONE,
                analyzed_at__isnull=True,
                status_changed_at__lt=cutoff,
            )
            .order_by("status_changed_at")
            .values_list("pk", flat=True)[:1000]
        )
    sent = [pk for pk, _ in stale if enqueue_upload(pk)]
    analyses = [pk for pk in unanalyzed if enqueue_analysis(pk)]
    waiting = [
        pk for pk, status in stale if status == Upload.Status.QUEUED and pk in sent
    ]
    if waiting or analyses:
        # Not again next sweep while they wait in the queue behind others.
        Upload.objects.filter(pk__in=[*waiting, *analyses]).update(
            status_changed_at=timezone.now()
        )
    if stale:
        logger.info(
            "requeued %s stale uploads (%s could not be sent)",
            len(sent),
            len(stale) - len(sent),
        )
    return len(sent) + len(analyses)
