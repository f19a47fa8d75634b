"""Text search over test names for the pages (dashboards.search).

On PostgreSQL a trigram GIN index on upper(name) serves Django's icontains
(``UPPER(name) LIKE UPPER('%...%')``) at 100,000 tests; pg_trgm is a
trusted extension, so the database owner may create it. SQLite (the
embedded default) scans, which is fast at its sizes.
"""

from django.db import migrations

CREATE = [
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    "CREATE INDEX IF NOT EXISTS case_name_trgm_idx ON flakewatch_case "
    "USING gin (upper(name) gin_trgm_ops)",
]
DROP = ["DROP INDEX IF EXISTS case_name_trgm_idx"]


def run(statements):
    def apply(apps, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return
        with schema_editor.connection.cursor() as cursor:
            for sql in statements:
                cursor.execute(sql)

    return apply


class Migration(migrations.Migration):
    dependencies = [("flakewatch", "0004_ownership")]

    operations = [migrations.RunPython(run(CREATE), run(DROP))]
