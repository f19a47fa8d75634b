"""Write path for raw results: upsert cases and messages, insert executions.

On PostgreSQL an upload's rows travel by COPY into temporary staging tables
and are then upserted and inserted set-wise, three statements for the whole
upload; elsewhere (the SQLite embedded default) the ORM's bulk operations do
the same job.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.db import connection

from flakewatch.models import Case, CaseResult, FailureMessage, Upload

ORM_BATCH = 500


@dataclass(slots=True)
class ExecutionRow:
    """An execution ready to store: identity and message reduced to digests."""

    identity_hash: bytes
    retry_index: int
    outcome: int
    duration_ms: float | None
    message_digest: bytes | None


def identity_hash(suite: str, classname: str, name: str, file: str) -> bytes:
    """Return the 16-byte identity of a test within its project."""
    key = "\0".join((suite, classname, name, file)).encode("utf-8", "surrogatepass")
    return hashlib.blake2b(key, digest_size=16).digest()


def message_digest(kind: str, message: str, detail: str) -> bytes:
    """Return the 16-byte key under which a failure text is stored once."""
    key = "\0".join((kind, message, detail)).encode("utf-8", "surrogatepass")
    return hashlib.blake2b(key, digest_size=16).digest()


@dataclass(frozen=True, slots=True)
class StoredExecution:
    """An execution as stored: what the analytics update reads."""

    case_id: int
    retry_index: int
    outcome: int
    duration_ms: float | None
    message_id: int | None


def store_results(
    *,
    upload: Upload,
    cases: dict[bytes, tuple[str, str, str, str]],
    messages: dict[bytes, tuple[str, str, str, str]],
    executions: list[ExecutionRow],
    now: datetime,
) -> list[StoredExecution]:
    """Insert ``upload``'s executions, creating unseen cases and messages.

    ``cases`` maps identity hash to (suite, classname, name, file);
    ``messages`` maps digest to (kind, message, detail, signature). The caller owns the
    transaction and must hold the upload's row lock: an upload's rows are
    written once, together with its DONE mark.
    """
    if not executions:
        return []
    if connection.vendor == "postgresql":
        return _store_by_copy(upload, cases, messages, executions, now)
    return _store_by_orm(upload, cases, messages, executions, now)


def _copy_rows(cursor, table: str, columns: str, rows: Iterable[tuple]) -> None:
    with cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def _store_by_copy(upload, cases, messages, executions, now) -> list[StoredExecution]:
    project_id = upload.project_id
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMP TABLE fw_stage_case (identity_hash bytea, suite text,"
            " classname text, name text, file text) ON COMMIT DROP;"
            "CREATE TEMP TABLE fw_stage_message (digest bytea, kind text,"
            " message text, detail text, signature text) ON COMMIT DROP;"
            "CREATE TEMP TABLE fw_stage_result (identity_hash bytea, retry_index int2,"
            " outcome int2, duration_ms real, digest bytea) ON COMMIT DROP"
        )
        _copy_rows(
            cursor,
            "fw_stage_case",
            "identity_hash, suite, classname, name, file",
            ((key, *fields) for key, fields in cases.items()),
        )
        _copy_rows(
            cursor,
            "fw_stage_result",
            "identity_hash, retry_index, outcome, duration_ms, digest",
            (
                (
                    e.identity_hash,
                    e.retry_index,
                    e.outcome,
                    e.duration_ms,
                    e.message_digest,
                )
                for e in executions
            ),
        )
        cursor.execute(
            # Uses case_identity_uniq; existing cases cost one index probe each.
            "INSERT INTO flakewatch_case"
            " (project_id, identity_hash, suite, classname, name, file, first_seen_at)"
            " SELECT %s, identity_hash, suite, classname, name, file, %s"
            " FROM fw_stage_case"
            " ON CONFLICT (project_id, identity_hash) DO NOTHING",
            [project_id, now],
        )
        if messages:
            _copy_rows(
                cursor,
                "fw_stage_message",
                "digest, kind, message, detail, signature",
                ((key, *fields) for key, fields in messages.items()),
            )
            cursor.execute(
                "INSERT INTO flakewatch_failuremessage"
                " (project_id, digest, kind, message, detail, signature)"
                " SELECT %s, digest, kind, message, detail, signature"
                " FROM fw_stage_message"
                " ON CONFLICT (project_id, digest) DO NOTHING",
                [project_id],
            )
        cursor.execute("ANALYZE fw_stage_result")
        cursor.execute(
            "INSERT INTO flakewatch_caseresult"
            " (case_id, upload_id, retry_index, outcome, duration_ms, message_id)"
            " SELECT c.id, %s, r.retry_index, r.outcome, r.duration_ms, m.id"
            " FROM fw_stage_result r"
            " JOIN flakewatch_case c"
            "   ON c.project_id = %s AND c.identity_hash = r.identity_hash"
            " LEFT JOIN flakewatch_failuremessage m"
            "   ON m.project_id = %s AND m.digest = r.digest"
            " RETURNING case_id, retry_index, outcome, duration_ms, message_id",
            [upload.pk, project_id, project_id],
        )
        stored = [StoredExecution(*row) for row in cursor.fetchall()]
        # ON COMMIT DROP alone would leave them for a second store in the same
        # (outer) transaction.
        cursor.execute("DROP TABLE fw_stage_case, fw_stage_message, fw_stage_result")
    return stored


def _ids_by_key(queryset, key_field: str, keys: list[bytes]) -> dict[bytes, int]:
    ids: dict[bytes, int] = {}
    for start in range(0, len(keys), ORM_BATCH):
        chunk = keys[start : start + ORM_BATCH]
        for key, pk in queryset.filter(**{f"{key_field}__in": chunk}).values_list(
            key_field, "pk"
        ):
            ids[bytes(key)] = pk
    return ids


def _store_by_orm(upload, cases, messages, executions, now) -> list[StoredExecution]:
    project_id = upload.project_id
    Case.objects.bulk_create(
        [
            Case(
                project_id=project_id,
                identity_hash=key,
                suite=suite,
                classname=classname,
                name=name,
                file=file,
                first_seen_at=now,
            )
            for key, (suite, classname, name, file) in cases.items()
        ],
        batch_size=ORM_BATCH,
        ignore_conflicts=True,
    )
    FailureMessage.objects.bulk_create(
        [
            FailureMessage(
                project_id=project_id,
                digest=key,
                kind=kind,
                message=message,
                detail=detail,
                signature=signature,
            )
            for key, (kind, message, detail, signature) in messages.items()
        ],
        batch_size=ORM_BATCH,
        ignore_conflicts=True,
    )
    case_ids = _ids_by_key(
        Case.objects.filter(project_id=project_id), "identity_hash", list(cases)
    )
    message_ids = _ids_by_key(
        FailureMessage.objects.filter(project_id=project_id), "digest", list(messages)
    )
    rows = CaseResult.objects.bulk_create(
        [
            CaseResult(
                case_id=case_ids[e.identity_hash],
                upload_id=upload.pk,
                retry_index=e.retry_index,
                outcome=e.outcome,
                duration_ms=e.duration_ms,
                message_id=message_ids.get(e.message_digest),
            )
            for e in executions
        ],
        batch_size=ORM_BATCH,
    )
    return [
        StoredExecution(
            r.case_id, r.retry_index, r.outcome, r.duration_ms, r.message_id
        )
        for r in rows
    ]
