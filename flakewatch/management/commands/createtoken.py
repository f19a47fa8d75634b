"""``manage.py createtoken``: another upload, read or manage token for a project."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from flakewatch.models import ApiToken, Project
from flakewatch.tokens import issue_token


class Command(BaseCommand):
    """Issue an upload, read or manage token for an existing project."""

    help = "Create an API token for a project and print it alone on the last line."

    def add_arguments(self, parser: CommandParser) -> None:
        """Declare the slug and the options."""
        parser.add_argument("slug", help="The project's slug.")
        parser.add_argument(
            "--scope",
            required=True,
            choices=ApiToken.Scope.values,
            help=(
                "upload: CI posts reports; read: scripts and dashboards read "
                "results; manage: scripts change quarantines."
            ),
        )
        parser.add_argument("--label", default="", help="A note on who uses the token.")

    def handle(
        self, *args: Any, slug: str, scope: str, label: str, **options: Any
    ) -> None:
        """Issue the token and print it last."""
        project = Project.objects.filter(slug=slug).first()
        if project is None:
            raise CommandError(f"No project {slug!r}; create it with createproject.")
        token = issue_token(project, scope=scope, label=label)
        self.stderr.write(f"Created a {scope} token for {slug!r} (shown once):")
        self.stdout.write(token)
