"""Write path for raw results: upsert cases and messages, insert executions.

On PostgreSQL the upload's cases and messages are looked up in one query each
and only unseen ones inserted; executions then go by binary COPY straight into
the table. Elsewhere (the SQLite embedded default) the ORM's bulk operations
do the same job.
"""

from __future__ import annotations

import hashlib
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


RESULT_COLUMNS = "case_id, upload_id, retry_index, outcome, duration_ms, message_id"
RESULT_TYPES = ["int4", "int4", "int2", "int2", "float4", "int4"]


def store_results(
    *,
    upload: Upload,
    cases: dict[bytes, tuple[str, str, str, str]],
    messages: dict[bytes, tuple[str, str, str, str]],
    executions: list[ExecutionRow],
    now: datetime,
) -> None:
    """Insert ``upload``'s executions, creating unseen cases and messages.

    ``cases`` maps identity hash to (suite, classname, name, file);
    ``messages`` maps digest to (kind, message, detail, signature). The caller
    owns the transaction and must hold the upload's row lock: an upload's rows
    are written once, together with its DONE mark.
    """
    if not executions:
        return
    if connection.vendor != "postgresql":
        _store_by_orm(upload, cases, messages, executions, now)
        return
    case_ids = _ensure_rows(
        "flakewatch_case",
        "identity_hash",
        "project_id, identity_hash, suite, classname, name, file, first_seen_at",
        upload.project_id,
        {key: (*fields, now) for key, fields in cases.items()},
    )
    message_ids = _ensure_rows(
        "flakewatch_failuremessage",
        "digest",
        "project_id, digest, kind, message, detail, signature",
        upload.project_id,
        messages,
    )
    rows = sorted(
        (
            case_ids[e.identity_hash], upload.pk, e.retry_index, e.outcome,
            e.duration_ms, message_ids.get(e.message_digest),
        )
        for e in executions
    )  # fmt: skip
    with connection.cursor() as cursor:
        # Straight into the table in case order, as binary: no staging, no
        # join. CaseResult has no foreign keys, so nothing fires per row.
        with cursor.copy(
            f"COPY flakewatch_caseresult ({RESULT_COLUMNS}) FROM STDIN (FORMAT BINARY)"
        ) as copy:
            copy.set_types(RESULT_TYPES)
            for row in rows:
                copy.write_row(row)


def _lookup(cursor, table: str, key: str, project_id: int, keys: list[bytes]):
    """Yield (key, id) of the existing rows among ``keys`` (16 bytes each).

    The keys travel as one bytea split server-side: a 100,000-element array
    parameter costs seconds to escape; one blob costs milliseconds.
    """
    cursor.execute(
        f"SELECT {key}, id FROM {table} WHERE project_id = %s AND {key} = ANY(ARRAY("
        " SELECT substring(%s::bytea FROM i * 16 + 1 FOR 16)"
        " FROM generate_series(0, %s - 1) AS i))",
        [project_id, b"".join(keys), len(keys)],
    )
    for found, pk in cursor.fetchall():
        yield bytes(found), pk


def _ensure_rows(
    table: str, key: str, columns: str, project_id: int, wanted: dict[bytes, tuple]
) -> dict[bytes, int]:
    """Return ids of ``wanted`` rows by key, inserting the missing ones.

    One indexed lookup for all keys (the table's (project_id, key) unique
    index); only the keys not found travel by COPY and are inserted.
    """
    if not wanted:
        return {}
    ids: dict[bytes, int] = {}
    with connection.cursor() as cursor:
        ids.update(_lookup(cursor, table, key, project_id, list(wanted)))
        missing = [k for k in wanted if k not in ids]
        if not missing:
            return ids
        stage = f"fw_stage_{table}"
        value_columns = columns.removeprefix("project_id, ")
        cursor.execute(
            f"CREATE TEMP TABLE {stage} ON COMMIT DROP AS"
            f" SELECT {value_columns} FROM {table} WITH NO DATA"
        )
        with cursor.copy(f"COPY {stage} ({value_columns}) FROM STDIN") as copy:
            for k in missing:
                copy.write_row((k, *wanted[k]))
        cursor.execute(
            f"INSERT INTO {table} ({columns}) SELECT %s, {value_columns} FROM {stage}"
            f" ON CONFLICT (project_id, {key}) DO NOTHING RETURNING {key}, id",
            [project_id],
        )
        ids.update((bytes(found), pk) for found, pk in cursor.fetchall())
        cursor.execute(f"DROP TABLE {stage}")
        raced = [k for k in missing if k not in ids]
        if raced:  # inserted meanwhile by a concurrent upload: now committed
            ids.update(_lookup(cursor, table, key, project_id, raced))
    return ids


def _ids_by_key(queryset, key_field: str, keys: list[bytes]) -> dict[bytes, int]:
    ids: dict[bytes, int] = {}
    for start in range(0, len(keys), ORM_BATCH):
        chunk = keys[start : start + ORM_BATCH]
        for key, pk in queryset.filter(**{f"{key_field}__in": chunk}).values_list(
            key_field, "pk"
        ):
            ids[bytes(key)] = pk
    return ids


def _store_by_orm(upload, cases, messages, executions, now) -> None:
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
    CaseResult.objects.bulk_create(
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


def stored_executions(upload_id: int) -> list[StoredExecution]:
    """Read an upload's executions back (the BRIN index on upload_id)."""
    return [
        StoredExecution(*row)
        for row in CaseResult.objects.filter(upload_id=upload_id).values_list(
            "case_id", "retry_index", "outcome", "duration_ms", "message_id"
        )
    ]
