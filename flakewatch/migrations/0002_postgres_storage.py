"""PostgreSQL-only storage tuning; a no-op on the SQLite embedded default."""

from django.db import migrations


def apply(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(
        # "Results of one upload" (status, re-processing, per-commit reads):
        # results are appended in upload order, so a BRIN range index finds an
        # upload's pages at a few kB for the whole table.
        "CREATE INDEX caseresult_upload_brin ON flakewatch_caseresult "
        "USING brin (upload_id) WITH (pages_per_range = 32)"
    )
    # Payloads are already gzip: skip TOAST's futile pglz attempt.
    schema_editor.execute(
        "ALTER TABLE flakewatch_uploadfile ALTER COLUMN payload_gz SET STORAGE EXTERNAL"
    )


def revert(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP INDEX IF EXISTS caseresult_upload_brin")


class Migration(migrations.Migration):
    dependencies = [("flakewatch", "0001_initial")]
    operations = [migrations.RunPython(apply, revert)]
