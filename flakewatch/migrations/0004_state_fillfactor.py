"""Leave room in state pages so per-upload updates stay HOT (PostgreSQL only).

Every upload rewrites the state row of each test it ran; with free space on
the page and no indexed column changed (most tests stay healthy), PostgreSQL
updates in place without touching the indexes.
"""

from django.db import migrations

TABLES = ("flakewatch_casestate", "flakewatch_dailycasestat", "flakewatch_suitestate")


def apply(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for table in TABLES:
            schema_editor.execute(f"ALTER TABLE {table} SET (fillfactor = 70)")


def revert(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for table in TABLES:
            schema_editor.execute(f"ALTER TABLE {table} RESET (fillfactor)")


class Migration(migrations.Migration):
    dependencies = [("flakewatch", "0003_analytics_state")]
    operations = [migrations.RunPython(apply, revert)]
