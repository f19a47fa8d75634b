"""Substring search of tests (``tests?q=``) through a trigram index.

PostgreSQL only; a no-op on the SQLite embedded default. ``pg_trgm`` ships
with PostgreSQL (contrib); creating it needs a role with CREATE on the
database (superuser on PostgreSQL before 13, a trusted extension since).
``case_search_trgm_idx`` is a GIN index over ``queries.SEARCH_TEXT``, the
four searched columns joined by a unit separator, and serves its
``ILIKE '%text%'`` in ``queries.case_list``; the expression here and there
must stay identical, or the planner cannot use the index.
"""

from django.db import migrations

APPLY = [
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    "CREATE INDEX case_search_trgm_idx ON flakewatch_case USING gin ("
    "(suite || E'\\x1f' || classname || E'\\x1f' || name || E'\\x1f' || file)"
    " gin_trgm_ops)",
]
# The extension stays: other databases objects may use it by then.
REVERT = ["DROP INDEX IF EXISTS case_search_trgm_idx"]


def _run(statements: list[str]):
    def run(apps, schema_editor) -> None:
        if schema_editor.connection.vendor == "postgresql":
            for statement in statements:
                schema_editor.execute(statement)

    return run


class Migration(migrations.Migration):
    dependencies = [("flakewatch", "0004_ownership")]
    operations = [migrations.RunPython(_run(APPLY), _run(REVERT))]
