"""``manage.py createproject``: a new project and its first upload token."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from flakewatch.models import ApiToken, Project
from flakewatch.tokens import issue_token


class Command(BaseCommand):
    """Create a project and print its first upload token."""

    help = "Create a project and print a new upload token alone on the last line."

    def add_arguments(self, parser: CommandParser) -> None:
        """Declare the slug and the options."""
        parser.add_argument("slug", help="Short name used in URLs, e.g. payments.")
        parser.add_argument(
            "--name", default="", help="Display name (default: the slug)."
        )
        parser.add_argument(
            "--default-branch",
            default="main",
            help="The branch analytics treat as truth.",
        )

    def handle(
        self, *args: Any, slug: str, name: str, default_branch: str, **options: Any
    ) -> None:
        """Create the project and print its upload token last."""
        if Project.objects.filter(slug=slug).exists():
            raise CommandError(
                f"Project {slug!r} exists; use createtoken for a new token."
            )
        project = Project.objects.create(
            slug=slug, name=name or slug, default_branch=default_branch
        )
        token = issue_token(project, scope=ApiToken.Scope.UPLOAD, label="createproject")
        self.stderr.write(f"Created project {slug!r}. Upload token (shown once):")
        self.stdout.write(token)
