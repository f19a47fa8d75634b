"""PostgreSQL-only storage; a no-op on the SQLite embedded default.

- ``CaseResult`` keeps no unique primary-key B-tree on PostgreSQL: its writer
  guarantees (case, upload, retry) uniqueness, and two deduplicating B-trees
  serve its reads, ``caseresult_case_idx`` (a test's history: analytics, the
  API's test detail) and ``caseresult_upload_idx`` (one upload's rows:
  ``results.stored_executions``). Upload ids only grow, so the latter's
  inserts go to its rightmost leaf. BRIN would be smaller but is exact only
  where vacuum has summarised the block ranges, so under a steady stream of
  uploads it rechecked the table's whole unsummarised tail.
- State tables leave a third of each page free, so the per-upload update of
  a test's state stays HOT (in place, no index writes) when no indexed
  column changes, as for most tests, which stay healthy.
- Report payloads are gzip already: TOAST's pglz attempt is skipped.
- ``Upload.run_at`` is never null (``received_at`` is not); Django's
  generated-column DDL has no NOT NULL of its own.
"""

from django.db import migrations

HOT_TABLES = (
    "flakewatch_casestate",
    "flakewatch_dailycasestat",
    "flakewatch_suitestate",
)

APPLY = [
    "ALTER TABLE flakewatch_caseresult DROP CONSTRAINT flakewatch_caseresult_pkey",
    "CREATE INDEX caseresult_case_idx ON flakewatch_caseresult (case_id)",
    "CREATE INDEX caseresult_upload_idx ON flakewatch_caseresult (upload_id)",
    "ALTER TABLE flakewatch_uploadfile ALTER COLUMN payload_gz SET STORAGE EXTERNAL",
    "ALTER TABLE flakewatch_upload ALTER COLUMN run_at SET NOT NULL",
    *(f"ALTER TABLE {table} SET (fillfactor = 70)" for table in HOT_TABLES),
]

REVERT = [
    *(f"ALTER TABLE {table} RESET (fillfactor)" for table in HOT_TABLES),
    "ALTER TABLE flakewatch_upload ALTER COLUMN run_at DROP NOT NULL",
    "ALTER TABLE flakewatch_uploadfile ALTER COLUMN payload_gz SET STORAGE EXTENDED",
    "DROP INDEX caseresult_upload_idx",
    "DROP INDEX caseresult_case_idx",
    "ALTER TABLE flakewatch_caseresult ADD CONSTRAINT flakewatch_caseresult_pkey"
    " PRIMARY KEY (case_id, upload_id, retry_index)",
]


def _run(statements: list[str]):
    def run(apps, schema_editor) -> None:
        if schema_editor.connection.vendor == "postgresql":
            for statement in statements:
                schema_editor.execute(statement)

    return run


class Migration(migrations.Migration):
    dependencies = [("flakewatch", "0001_initial")]
    operations = [migrations.RunPython(_run(APPLY), _run(REVERT))]
