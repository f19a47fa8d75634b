from django.core.management.base import BaseCommand, CommandError

from flakewatch.models import ApiToken, Project
from flakewatch.tokens import issue_token


class Command(BaseCommand):
    help = "Create a project and print a new upload token alone on the last line."

    def add_arguments(self, parser):
        parser.add_argument("slug", help="Short name used in URLs, e.g. payments.")
        parser.add_argument(
            "--name", default="", help="Display name (default: the slug)."
        )
        parser.add_argument(
            "--default-branch",
            default="main",
            help="The branch analytics treat as truth.",
        )

    def handle(self, *args, slug, name, default_branch, **options):
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
