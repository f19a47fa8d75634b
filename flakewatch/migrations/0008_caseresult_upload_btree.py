"""Serve "one upload's results" with a B-tree on upload_id instead of BRIN.

The BRIN index was exact only where autovacuum had summarised the block
ranges: every range written since the last vacuum matches every query, so
under a steady stream of uploads the analytics read of one upload's rows
(7,000 of them) rechecked a million rows of the table's tail. A deduplicated
B-tree costs about 6 bytes a row and is always exact; upload ids only grow,
so its inserts go to the rightmost leaf.

Built CONCURRENTLY, outside a transaction, so an existing installation keeps
taking uploads meanwhile.
"""

from django.db import migrations


def apply(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return  # the SQLite embedded default keeps its composite primary key
    schema_editor.execute(
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS caseresult_upload_idx"
        " ON flakewatch_caseresult (upload_id)"
    )
    schema_editor.execute("DROP INDEX CONCURRENTLY IF EXISTS caseresult_upload_brin")


def revert(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS caseresult_upload_brin"
        " ON flakewatch_caseresult USING brin (upload_id) WITH (pages_per_range = 32)"
    )
    schema_editor.execute("DROP INDEX CONCURRENTLY IF EXISTS caseresult_upload_idx")


class Migration(migrations.Migration):
    atomic = False
    dependencies = [("flakewatch", "0007_case_project_unconstrained")]
    operations = [migrations.RunPython(apply, revert)]
