"""Store each upload's run time, and index the run order the analytics read.

``run_at`` is COALESCE(started_at, received_at), a stored generated column:
adding it back-fills every existing upload, and the database keeps it right
for every writer (the API, the ingest command, COPY in the benchmarks). The
analytics order and filter on it; ``upload_branch_time_idx`` (on
``received_at``, without ``job``) served none of those queries and goes.
"""

from django.db import migrations, models
from django.db.models.functions import Coalesce


def run_at_not_null(apps, schema_editor):
    # Never null (received_at is not), and PostgreSQL can be told so;
    # Django's generated-column DDL has no NOT NULL of its own.
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            "ALTER TABLE flakewatch_upload ALTER COLUMN run_at SET NOT NULL"
        )


class Migration(migrations.Migration):
    dependencies = [("flakewatch", "0008_caseresult_upload_btree")]

    operations = [
        migrations.RemoveIndex(model_name="upload", name="upload_branch_time_idx"),
        migrations.AddField(
            model_name="upload",
            name="run_at",
            field=models.GeneratedField(
                db_persist=True,
                expression=Coalesce("started_at", "received_at"),
                output_field=models.DateTimeField(),
            ),
        ),
        migrations.RunPython(run_at_not_null, migrations.RunPython.noop),
        migrations.AddIndex(
            model_name="upload",
            index=models.Index(
                fields=["project", "branch", "job", "run_at"],
                name="upload_run_order_idx",
            ),
        ),
        migrations.AddIndex(
            model_name="upload",
            index=models.Index(
                fields=["project", "build", "job", "attempt"],
                name="upload_build_job_idx",
            ),
        ),
        migrations.AddIndex(
            model_name="upload",
            index=models.Index(
                condition=models.Q(("analyzed_at__isnull", True), ("status", "done")),
                fields=["project", "run_at", "id"],
                name="upload_waiting_idx",
            ),
        ),
    ]
