"""``manage.py quarantine``: accept, dismiss, release or mark a fix attempt."""

import getpass
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from flakewatch import quarantine
from flakewatch.models import Project


class Command(BaseCommand):
    """Apply one quarantine action to a test, as the API does."""

    help = "Accept, dismiss or release a test's quarantine, or mark a fix attempt."

    def add_arguments(self, parser: CommandParser) -> None:
        """Declare the project, the test id and the action's fields."""
        parser.add_argument("--project", required=True, help="The project's slug.")
        parser.add_argument("test_id", type=int, help="The test's id (tests API).")
        parser.add_argument(
            "--action",
            required=True,
            choices=quarantine.ACTIONS,
            help="What to do with the test's quarantine.",
        )
        parser.add_argument("--owner", default="", help="Who fixes it (accept).")
        parser.add_argument("--note", default="", help="Why: kept in the trail.")
        parser.add_argument(
            "--expires",
            default=None,
            help="ISO 8601 date or time (accept; default FLAKEWATCH_QUARANTINE_DAYS).",
        )
        parser.add_argument(
            "--commit", default="", help="The commit of the fix (fix_attempted)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        """Apply the action and print the test's quarantine state."""
        project = Project.objects.filter(slug=options["project"]).first()
        if project is None:
            raise CommandError(f"No project {options['project']!r}.")
        try:
            row = quarantine.act(
                project,
                case_id=options["test_id"],
                action=options["action"],
                actor=f"shell:{getpass.getuser()}",
                owner=options["owner"],
                note=options["note"],
                expires=options["expires"],
                commit=options["commit"],
            )
        except quarantine.QuarantineError as exc:
            raise CommandError(exc.detail) from None
        self.stdout.write(f"test {row.case_id}: {row.state}")
