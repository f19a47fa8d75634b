"""Write path for raw results: upsert cases and messages, insert executions.

On PostgreSQL the upload's cases and messages are looked up in one query each
and only unseen ones inserted; executions then go by binary COPY straight into
the table. Elsewhere (the SQLite embedded default) the ORM's bulk operations
do the same job.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from operator import itemgetter
from typing import Any

from django.db import connection
from django.db.backends.utils import CursorWrapper
from django.db.models import QuerySet

from flakewatch import db, ownership
from flakewatch.analytics.runs import StoredExecution
from flakewatch.models import Case, CaseResult, FailureMessage, Upload

ORM_BATCH = 500


# An execution ready to store, its identity and message reduced to digests:
# (identity_hash, retry_index, outcome, duration_ms, message_digest or None).
# A plain tuple: an upload makes 100,000 of them.
ExecutionRow = tuple[bytes, int, int, "float | None", "bytes | None"]


def identity_hash(suite: str, classname: str, name: str, file: str) -> bytes:
    """Return the 16-byte identity of a test within its project."""
    key = "\0".join((suite, classname, name, file)).encode("utf-8", "surrogatepass")
    return hashlib.blake2b(key, digest_size=16).digest()


def message_digest(kind: str, message: str, detail: str) -> bytes:
    """Return the 16-byte key under which a failure text is stored once."""
    key = "\0".join((kind, message, detail)).encode("utf-8", "surrogatepass")
    return hashlib.blake2b(key, digest_size=16).digest()


# Every CaseResult column, in the order of the rows store_results writes:
# (case_id, upload_id, retry_index, outcome, duration_ms, message_id).
RESULT_NAMES = db.columns(CaseResult)
RESULT_COLUMNS = ", ".join(RESULT_NAMES)


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
    if not db.is_postgresql():
        _store_by_orm(upload, cases, messages, executions, now)
        return
    case_ids = _ensure_rows(
        Case,
        "identity_hash",
        ["suite", "classname", "name", "file"],
        {"first_seen_at": now},
        upload.project_id,
        cases,
        extra=(["team_id", "layer"], ownership.assign_new),
    )
    message_ids = (
        _ensure_rows(
            FailureMessage,
            "digest",
            ["kind", "message", "detail", "signature"],
            {},
            upload.project_id,
            messages,
        )
        if messages
        else {}
    )
    upload_id = upload.pk
    message_id = message_ids.get
    # Tuples in RESULT_NAMES order.
    rows = [
        (
            case_ids[identity],
            upload_id,
            retry,
            outcome,
            duration_ms,
            message_id(digest) if digest else None,
        )
        for identity, retry, outcome, duration_ms, digest in executions
    ]
    # In case order, so the inserts walk caseresult_case_idx once from end to
    # end rather than touching its leaves at random (test order varies from
    # run to run). 5 ms for 100,000 rows already in order, 40 ms shuffled.
    rows.sort(key=itemgetter(0))
    # Straight into the table, as binary: no staging, no join. CaseResult
    # has no foreign keys, so nothing fires per row.
    db.copy_rows(CaseResult, RESULT_NAMES, rows, binary=True)


def _lookup(
    cursor: CursorWrapper, table: str, key: str, project_id: int, keys: list[bytes]
) -> Iterator[tuple[bytes, int]]:
    """Yield (key, id) of the existing rows among ``keys`` (16 bytes each).

    The keys travel as one bytea split server-side (a 100,000-element array
    parameter costs seconds to escape; one blob costs milliseconds) and are
    joined, not matched with ``= ANY``: the planner then picks between probing
    the (project_id, key) unique index per key and hashing the project's rows,
    where ANY sorts the array and probes (2-3x slower for 100,000 keys).
    """
    cursor.execute(
        f"SELECT i, t.id FROM generate_series(0, %s - 1) AS i"
        f" JOIN {table} t ON t.project_id = %s"
        f" AND t.{key} = substring(%s::bytea FROM i * 16 + 1 FOR 16)",
        [len(keys), project_id, b"".join(keys)],
    )
    # The key's position comes back, not the key: ints parse faster than bytea.
    for position, pk in cursor.fetchall():
        yield keys[position], pk


def _ensure_rows(
    model: type[Case | FailureMessage],
    key: str,
    text_columns: list[str],
    constants: dict[str, datetime | str | int],
    project_id: int,
    wanted: Mapping[bytes, tuple[str, ...]],
    *,
    extra: tuple[
        list[str], Callable[[int, list[tuple[Any, ...]]], list[tuple[Any, ...]]]
    ]
    | None = None,
) -> dict[bytes, int]:
    """Return ids of ``wanted`` rows by key, inserting the missing ones.

    ``wanted`` maps key to the values of ``text_columns``; ``constants`` are
    the same for every new row. One lookup for all keys; only the keys not
    found travel, by binary COPY, and are inserted. ``extra`` is (columns,
    function of the project id and the missing rows' values returning
    theirs): per-row values computed for new rows only (a test's team and
    layer).
    """
    if not wanted:
        return {}
    table = db.table(model)
    ids: dict[bytes, int] = {}
    with connection.cursor() as cursor:
        ids.update(_lookup(cursor, table, key, project_id, list(wanted)))
    if len(ids) == len(wanted):
        return ids
    missing = [k for k in wanted if k not in ids]
    staged = [key, *text_columns]
    new_rows = [(k, *wanted[k]) for k in missing]
    if extra is not None:
        staged += extra[0]
        values_of = extra[1](project_id, [wanted[k] for k in missing])
        new_rows = [
            (*row, *more) for row, more in zip(new_rows, values_of, strict=True)
        ]
    stage = db.copy_to_stage(model, staged, new_rows, binary=True)
    columns = ", ".join(["project_id", *staged, *constants])
    values = ", ".join(["%s", *staged, *["%s"] * len(constants)])
    with connection.cursor() as cursor:
        # Conflicts are other uploads inserting the same new tests meanwhile.
        cursor.execute(
            f"INSERT INTO {table} ({columns}) SELECT {values} FROM {stage}"
            f" ON CONFLICT (project_id, {key}) DO NOTHING RETURNING {key}, id",
            [project_id, *constants.values()],
        )
        ids.update((bytes(found), pk) for found, pk in cursor.fetchall())
        raced = [k for k in missing if k not in ids]
        if raced:  # inserted meanwhile by a concurrent upload: now committed
            ids.update(_lookup(cursor, table, key, project_id, raced))
    return ids


def _ids_by_key(
    queryset: QuerySet[Case] | QuerySet[FailureMessage],
    key_field: str,
    keys: list[bytes],
) -> dict[bytes, int]:
    ids: dict[bytes, int] = {}
    for start in range(0, len(keys), ORM_BATCH):
        chunk = keys[start : start + ORM_BATCH]
        for key, pk in queryset.filter(**{f"{key_field}__in": chunk}).values_list(
            key_field, "pk"
        ):
            ids[bytes(key)] = pk
    return ids


def _store_by_orm(
    upload: Upload,
    cases: dict[bytes, tuple[str, str, str, str]],
    messages: dict[bytes, tuple[str, str, str, str]],
    executions: list[ExecutionRow],
    now: datetime,
) -> None:
    project_id = upload.project_id
    known = _ids_by_key(
        Case.objects.filter(project_id=project_id), "identity_hash", list(cases)
    )
    new = [key for key in cases if key not in known]
    assigned = ownership.assign_new(project_id, [cases[key] for key in new])
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
                team_id=team_id,
                layer=layer,
            )
            for key, (team_id, layer) in zip(new, assigned, strict=True)
            for suite, classname, name, file in (cases[key],)
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
                case_id=case_ids[identity],
                upload_id=upload.pk,
                retry_index=retry,
                outcome=outcome,
                duration_ms=duration_ms,
                message_id=None if digest is None else message_ids.get(digest),
            )
            for identity, retry, outcome, duration_ms, digest in executions
        ],
        batch_size=ORM_BATCH,
    )


def stored_executions(upload_id: int) -> list[StoredExecution]:
    """Read an upload's executions back, in (case_id, retry_index) order.

    Uses caseresult_upload_idx.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT case_id, retry_index, outcome, duration_ms, message_id"
            f" FROM {db.table(CaseResult)} WHERE upload_id = %s"
            " ORDER BY case_id, retry_index",
            [upload_id],
        )
        rows: list[StoredExecution] = cursor.fetchall()
        return rows
