"""The small database toolkit: every difference between PostgreSQL and SQLite.

Production runs on PostgreSQL; the embedded default (``make run``, no
settings) on SQLite. The domain modules write their SQL once, through these
functions, and never ask which database they are on: on PostgreSQL, id lists
travel as one array, bulk writes go by COPY into a staging table and the
analytics take an advisory lock; on SQLite, id lists go in chunks, writes go
row by row and there is nothing to lock (one writer at a time anyway).

Column lists come from the models (``columns``) and table names from
``_meta.db_table``, so a model change needs no edit here or in the callers'
SQL beyond the columns they name.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, cast, overload

from django.db import connection, models

# SQLite caps the bound parameters of one statement (32,766 since 3.32).
SQLITE_CHUNK = 500

Row = Sequence[Any]


def is_postgresql() -> bool:
    """Return whether the default database is PostgreSQL (else SQLite)."""
    return connection.vendor == "postgresql"


def table(model: type[models.Model]) -> str:
    """Return the model's table name, for raw SQL."""
    return model._meta.db_table


def columns(model: type[models.Model], *, exclude: Iterable[str] = ()) -> list[str]:
    """Return the model's writable columns in model order.

    Leaves out an auto-increment primary key, generated columns and
    ``exclude``; these are the columns an INSERT names.
    """
    skipped = set(exclude)
    return [
        field.column
        for field in model._meta.concrete_fields
        if not isinstance(field, models.AutoField)
        and not field.generated
        and field.column not in skipped
    ]


def json_columns(model: type[models.Model]) -> set[str]:
    """Return the model's JSON columns: raw writes send them encoded."""
    return {
        field.column
        for field in model._meta.concrete_fields
        if isinstance(field, models.JSONField)
    }


def encode_json(value: object) -> str:
    """Encode a JSON column's value for a raw write (empty as ``[]``)."""
    return json.dumps(value) if value else "[]"


def as_json(value: object) -> object:
    """Return a JSON column's value as read raw (SQLite hands back text)."""
    return json.loads(value) if isinstance(value, str) else value


@overload
def as_datetime(value: datetime | str) -> datetime: ...
@overload
def as_datetime(value: None) -> None: ...
def as_datetime(value: datetime | str | None) -> datetime | None:
    """Return a datetime column's value as read raw, aware (UTC).

    SQLite hands back text: ISO with an offset where a raw write stored it,
    naive UTC where the ORM did.
    """
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value is not None and value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value


def least(*expressions: str) -> str:
    """Return SQL for the smallest of ``expressions`` (LEAST; SQLite: MIN)."""
    function = "LEAST" if is_postgresql() else "MIN"
    return f"{function}({', '.join(expressions)})"


def id_chunks(ids: Sequence[int]) -> Iterator[Sequence[int]]:
    """Yield ``ids`` in slices an ORM ``__in`` filter may take.

    All at once on PostgreSQL; SQLITE_CHUNK at a time on SQLite, which caps
    the bound parameters of one statement.
    """
    step = (len(ids) or 1) if is_postgresql() else SQLITE_CHUNK
    for start in range(0, len(ids), step):
        yield ids[start : start + step]


def select_by_ids(
    sql: str,
    ids: Sequence[int],
    params: Sequence[Any] = (),
    *,
    order: Callable[[tuple[Any, ...]], Any] | None = None,
) -> list[tuple[Any, ...]]:
    """Run ``sql`` whose ``{ids}`` stands for ``IN ids``; return all rows.

    PostgreSQL gets the ids as one array (``= ANY(%s)``), SQLite as chunks of
    IN lists; ``params`` follow the ids. ``order`` is the sort key of the
    SQL's ORDER BY, to merge SQLite's chunks in that order again.
    """
    if not ids:
        return []
    with connection.cursor() as cursor:
        if is_postgresql():
            cursor.execute(sql.format(ids="= ANY(%s)"), [list(ids), *params])
            found: list[tuple[Any, ...]] = cursor.fetchall()
            return found
        rows: list[tuple[Any, ...]] = []
        for start in range(0, len(ids), SQLITE_CHUNK):
            chunk = ids[start : start + SQLITE_CHUNK]
            marks = ", ".join(["%s"] * len(chunk))
            cursor.execute(sql.format(ids=f"IN ({marks})"), [*chunk, *params])
            rows.extend(cursor.fetchall())
    if order is not None:
        rows.sort(key=order)
    return rows


def _copy_types(model: type[models.Model], names: Sequence[str]) -> list[str]:
    """Return the PostgreSQL type name of each column, for a binary COPY."""
    by_column = {field.column: field for field in model._meta.concrete_fields}
    # "varchar(200)" -> "varchar": psycopg knows types by their bare name.
    # A concrete field always has a column type; db_type is None only for others.
    types = [cast(str, by_column[name].db_type(connection)) for name in names]
    return [type_.split("(")[0] for type_ in types]


def copy_rows(
    model: type[models.Model],
    names: Sequence[str],
    rows: Iterable[Row],
    *,
    into: str | None = None,
    binary: bool = False,
) -> None:
    """COPY ``rows`` (tuples in ``names`` order) into the model's table.

    PostgreSQL only. ``into`` names another table of the same columns (a
    staging table); ``binary`` sends the rows in binary, typed from the
    model's fields, which parses faster than text.
    """
    target = into or table(model)
    column_list = ", ".join(names)
    with connection.cursor() as cursor:
        sql = f"COPY {target} ({column_list}) FROM STDIN"
        with cursor.copy(sql + (" (FORMAT BINARY)" if binary else "")) as copy:
            if binary:
                copy.set_types(_copy_types(model, names))
            write_row = copy.write_row
            for row in rows:
                write_row(row)


def copy_to_stage(
    model: type[models.Model],
    names: Sequence[str],
    rows: Iterable[Row],
    *,
    binary: bool = False,
    suffix: str = "",
) -> str:
    """COPY ``rows`` into an empty staging copy of the model's table.

    PostgreSQL only; returns the staging table's name for the caller's
    INSERT ... SELECT. The staging table is created once per transaction
    and emptied for each use: recompute replays thousands of uploads in one
    transaction, and every table created there would hold a lock until it
    ends. A ``suffix`` names another staging table of the same model, for
    another set of columns in the same transaction.
    """
    stage = f"fw_stage_{table(model)}{suffix}"
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {stage} ON COMMIT DROP AS"
            f" SELECT {', '.join(names)} FROM {table(model)} WITH NO DATA"
        )
        cursor.execute(f"TRUNCATE {stage}")
    copy_rows(model, names, rows, into=stage, binary=binary)
    return stage


def upsert(
    model: type[models.Model],
    names: Sequence[str],
    rows: Iterable[Row],
    *,
    key: Sequence[str],
    update: str,
) -> None:
    """Insert ``rows``, or on a ``key`` conflict SET ``update``.

    ``rows`` are tuples in ``names`` order; ``update`` is SQL that may name
    ``excluded.<column>``.

    ``rows`` must not repeat a key. PostgreSQL: by COPY into a staging table
    and one INSERT ... SELECT; SQLite: row by row. The caller owns the
    transaction.
    """
    target, column_list = table(model), ", ".join(names)
    conflict = f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {update}"
    if is_postgresql():
        stage = copy_to_stage(model, names, rows)
        sql = f"INSERT INTO {target} ({column_list}) SELECT {column_list} FROM {stage}"
        with connection.cursor() as cursor:
            cursor.execute(f"{sql} {conflict}")
        return
    rows = list(rows)
    if not rows:
        return
    marks = ", ".join(["%s"] * len(names))
    with connection.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO {target} ({column_list}) VALUES ({marks}) {conflict}", rows
        )


def update_rows(
    model: type[models.Model],
    names: Sequence[str],
    rows: Iterable[Row],
    *,
    suffix: str = "_update",
) -> None:
    """SET columns ``names[1:]`` of the rows whose ``names[0]`` (a key) matches.

    PostgreSQL: by COPY into a staging table and one UPDATE ... FROM;
    SQLite: row by row. The caller owns the transaction.
    """
    key, *values = names
    target = table(model)
    if is_postgresql():
        stage = copy_to_stage(model, names, rows, suffix=suffix)
        assignments = ", ".join(f"{name} = s.{name}" for name in values)
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {target} SET {assignments} FROM {stage} s"
                f" WHERE {target}.{key} = s.{key}"
            )
        return
    assignments = ", ".join(f"{name} = %s" for name in values)
    with connection.cursor() as cursor:
        cursor.executemany(
            f"UPDATE {target} SET {assignments} WHERE {key} = %s",
            [(*row[1:], row[0]) for row in rows],
        )


def set_excluded(names: Iterable[str]) -> str:
    """Return an upsert's ``update`` that takes each of ``names`` as sent."""
    return ", ".join(f"{name} = excluded.{name}" for name in names)


def add_excluded(model: type[models.Model], names: Iterable[str]) -> str:
    """Return an upsert's ``update`` that adds the sent value to each column."""
    target = table(model)
    return ", ".join(f"{name} = {target}.{name} + excluded.{name}" for name in names)


def advisory_lock(space: int, key: int) -> None:
    """Take a transaction-scoped advisory lock on (space, key).

    PostgreSQL only; SQLite serialises writers itself, so this does nothing
    there. The lock is released at commit or rollback.
    """
    if is_postgresql():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [space, key])
