"""``manage.py prune``: delete raw data past its retention, now."""

from typing import Any

from django.core.management.base import BaseCommand

from flakewatch import retention


class Command(BaseCommand):
    """Run the nightly prune of report files and raw executions now."""

    help = (
        "Delete stored report files and raw executions older than their "
        "retention settings; rollups, verdicts and evidence are kept."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        """Prune and print what was deleted."""
        counts = retention.prune_raw_data()
        self.stdout.write(
            f"Pruned {counts.payload_files} report files and "
            f"{counts.executions} executions of {counts.result_uploads} uploads."
        )
