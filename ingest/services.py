"""Accept uploads durably, process them idempotently, sweep up stragglers.

Life of an upload: ``accept_upload`` stores the row and its gzip payloads in
one transaction and enqueues processing on commit, so a 202 always means
stored. ``process_upload`` marks it processing (committed, so the status
endpoint shows it), then parses and writes every result and the DONE mark in
one transaction under the upload's row lock: a redelivered or duplicate task
either waits for that lock and finds DONE, or finds nothing written.
``requeue_stale_uploads`` re-sends uploads whose task could not be sent
(broker down: at once), whose task was lost, or whose worker died.
``ingest_now`` does all of it in-process, for the command and for tests.

Errors here are domain errors (``UploadError`` and its kinds) carrying a
sentence a person can act on; the interfaces map them to status codes.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import time
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from flakewatch import db, dispatch, metrics, results
from flakewatch.analysis import analyze_upload
from flakewatch.analytics.signatures import failure_signature
from flakewatch.models import Project, Upload, UploadFile
from ingest.parsing import ParsedReport, ReportError, collector_paused, parse_report

logger = logging.getLogger(__name__)

GZIP_MAGIC = b"\x1f\x8b"
# Level 1 compresses XML about 8:1 at several times the speed of level 6,
# which keeps the 202 fast for large reports.
STORE_COMPRESSLEVEL = 1
READ_CHUNK = 1 << 20


class UploadError(Exception):
    """The input cannot become an upload; ``detail`` says what to do."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class InvalidUpload(UploadError):
    """A field is missing or malformed, no report came, or one is not gzip."""


class UploadTooLarge(UploadError):
    """The reports exceed ``limit`` bytes after decompression."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"The reports exceed the {limit // (1024 * 1024)} MB limit after "
            "decompression; upload them in separate requests or raise "
            "FLAKEWATCH_MAX_UPLOAD_BYTES."
        )
        self.limit = limit


@dataclass(frozen=True)
class UploadMetadata:
    """What CI says about the job run an upload's reports come from."""

    commit_sha: str
    branch: str
    build: str
    job: str
    attempt: int = 1
    build_url: str = ""
    started_at: datetime | None = None


@dataclass(frozen=True)
class ReceivedFile:
    """One report file as stored: gzip payload, content digest and size."""

    filename: str
    content_sha256: str
    size_bytes: int
    payload_gz: bytes


# One read loop each for gzip and plain input, sharing the size budget, the
# digest and the first chunk: split, they would pass all of them around.
def receive_file(  # noqa: C901
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
                        raise UploadTooLarge(settings.FLAKEWATCH_MAX_UPLOAD_BYTES)
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
            raise InvalidUpload(
                f"{filename} looks gzip-compressed but is not valid gzip ({exc})."
            ) from None
        if not decompressor.eof:
            raise InvalidUpload(f"{filename} is a truncated gzip file.")
        payload = b"".join(compressed)
    else:
        compressor = zlib.compressobj(STORE_COMPRESSLEVEL, zlib.DEFLATED, 31)
        parts = []
        for chunk in _chain(first, chunks):
            size += len(chunk)
            if size > budget:
                raise UploadTooLarge(settings.FLAKEWATCH_MAX_UPLOAD_BYTES)
            digest.update(chunk)
            parts.append(compressor.compress(chunk))
        parts.append(compressor.flush())
        payload = b"".join(parts)
    name = filename.removesuffix(".gz") if first.startswith(GZIP_MAGIC) else filename
    return ReceivedFile(name[:500] or "report.xml", digest.hexdigest(), size, payload)


def _chain(
    first: bytes, rest: Iterator[bytes], keep: list[bytes] | None = None
) -> Iterator[bytes]:
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
    *,
    project: Project,
    meta: UploadMetadata,
    files: list[ReceivedFile],
    enqueue: bool = True,
) -> tuple[Upload, bool]:
    """Store an upload and enqueue it on commit; return (upload, created).

    Idempotent: the same reports for the same (build, job, attempt) return
    the upload stored first, with ``created`` False, and enqueue nothing.
    ``enqueue=False`` leaves the processing to the caller (``ingest_now``).
    Owns its transaction.
    """
    if not files:
        raise InvalidUpload(
            "No report attached: send it as -F file=@junit.xml or as the request body."
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
            if enqueue:
                transaction.on_commit(
                    partial(send_task_for, dispatch.PROCESS_UPLOAD, upload.pk)
                )
    except IntegrityError:
        existing = find_upload(project, meta=meta, files=files)
        if existing is None:  # not the idempotency constraint after all
            raise
        return existing, False
    logger.info("upload accepted", extra={"upload_id": upload.pk})
    return upload, True


def find_upload(
    project: Project, *, meta: UploadMetadata, files: list[ReceivedFile]
) -> Upload | None:
    """Return the upload these reports of this job attempt already made, if any."""
    key = idempotency_key(meta, files)
    return Upload.objects.filter(project=project, idempotency_key=key).first()


def ingest_now(
    project: Project, *, meta: UploadMetadata, files: list[ReceivedFile]
) -> Upload:
    """Accept, process and analyse an upload in this process; return it.

    Sends no task: for the ``ingest`` command, tests and benchmarks. Safe to
    repeat: the same reports again return the first upload, finished if it
    was not (a stored but unprocessed upload is processed here). Owns its
    transactions.
    """
    upload, _ = accept_upload(project=project, meta=meta, files=files, enqueue=False)
    process_upload(upload.pk, enqueue_analysis=False)
    analyze_upload(upload.pk)
    upload.refresh_from_db()
    return upload


def send_task_for(task: str, upload_id: int) -> bool:
    """Send ``task`` for an upload; if the broker is down, mark the upload.

    The mark (``dispatch_failed``) makes the next sweep re-send it at once,
    rather than when it is older than FLAKEWATCH_REQUEUE_AFTER_SECONDS. Call
    it outside a transaction (on commit), so that the mark commits.
    """
    sent = dispatch.send(task, upload_id)
    if not sent:
        Upload.objects.filter(pk=upload_id).update(dispatch_failed=True)
    return sent


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


def process_upload(upload_id: int, *, enqueue_analysis: bool = True) -> None:
    """Parse a stored upload and write its results; safe to repeat.

    Sends the analysis task on commit unless ``enqueue_analysis`` is False
    (the caller analyses). Owns its transactions. Unreadable reports mark
    the upload failed (they will not improve on retry); database errors
    propagate for the task's retry.
    """
    if not _begin_processing(upload_id):
        return
    started = time.monotonic()
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
            if enqueue_analysis:
                transaction.on_commit(
                    partial(send_task_for, dispatch.ANALYZE_UPLOAD, upload_id)
                )
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
    metrics.INGEST_SECONDS.observe(time.monotonic() - started)
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
) -> tuple[
    dict[bytes, tuple[str, str, str, str]],
    dict[bytes, tuple[str, str, str, str]],
    list[results.ExecutionRow],
]:
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
                    signature = failure_signature(e.message, e.detail, fields)
                    messages[digest] = (e.kind, e.message, e.detail, signature)
            append((identity, retry, e.outcome, e.duration_ms, digest))
    return cases, messages, rows


def requeue_stale_uploads() -> int:
    """Re-send the tasks of uploads left behind; return how many were sent.

    At once: uploads whose last task could not be sent (``dispatch_failed``,
    the broker was down) and PROCESSING uploads that lost their worker. An
    upload being processed (or analysed) is row-locked by its worker for the
    whole write, so a PROCESSING row that can be locked has lost its worker
    (the database released the lock when the worker's connection died).
    After FLAKEWATCH_REQUEUE_AFTER_SECONDS: queued uploads, and done uploads
    waiting for their analysis, whose task was sent but lost (a broker that
    restarted without its data). Stops at the first task the broker refuses:
    the rest wait, marked, for the next sweep. PostgreSQL only: the embedded
    default runs tasks inline and has no worker to lose.
    """
    if not db.is_postgresql():
        return 0
    cutoff = timezone.now() - timedelta(
        seconds=settings.FLAKEWATCH_REQUEUE_AFTER_SECONDS
    )
    due = Q(dispatch_failed=True) | Q(status_changed_at__lt=cutoff)
    with transaction.atomic():
        # Uses upload_unfinished_idx (partial, status in queued/processing).
        stale = list(
            Upload.objects.select_for_update(skip_locked=True)
            .filter(
                (Q(status=Upload.Status.QUEUED) & due)
                | Q(status=Upload.Status.PROCESSING)
            )
            .order_by("status_changed_at")
            .values_list("pk", flat=True)[:1000]
        )
        # Uses upload_unanalyzed_idx (partial, done and not analysed).
        unanalyzed = list(
            Upload.objects.select_for_update(skip_locked=True)
            .filter(due, status=Upload.Status.DONE, analyzed_at__isnull=True)
            .order_by("status_changed_at")
            .values_list("pk", flat=True)[:1000]
        )
    sent: list[int] = []
    tasks = [(dispatch.PROCESS_UPLOAD, pk) for pk in stale]
    tasks += [(dispatch.ANALYZE_UPLOAD, pk) for pk in unanalyzed]
    for task, pk in tasks:
        if not send_task_for(task, pk):
            break  # the broker is down; each send would wait for its timeout
        sent.append(pk)
    if sent:
        # Not again next sweep while they wait in the queue behind others;
        # the status filter leaves alone an upload the task already moved on.
        now = timezone.now()
        Upload.objects.filter(pk__in=sent).update(dispatch_failed=False)
        Upload.objects.filter(
            Q(status=Upload.Status.QUEUED)
            | Q(status=Upload.Status.DONE, analyzed_at__isnull=True),
            pk__in=sent,
        ).update(status_changed_at=now)
    if tasks:
        logger.info(
            "re-sent the tasks of %s uploads left behind (%s could not be sent)",
            len(sent),
            len(tasks) - len(sent),
        )
    return len(sent)
