"""``manage.py importowners``: a project's ownership from its CODEOWNERS file."""

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from flakewatch import ownership
from flakewatch.models import Project


def _mapping(pairs: list[str]) -> dict[str, str]:
    """Read ``--map OWNER=SLUG`` pairs; raise CommandError on a bad one."""
    mapping = {}
    for pair in pairs:
        owner, sep, slug = pair.partition("=")
        if not sep or not owner or not slug:
            raise CommandError(f"--map {pair!r}: write it as @org/team=team-slug.")
        mapping[owner] = slug
    return mapping


class Command(BaseCommand):
    """Replace a project's imported ownership rules and re-assign its tests."""

    help = "Import a GitHub or GitLab CODEOWNERS file as a project's ownership rules."

    def add_arguments(self, parser: CommandParser) -> None:
        """Declare the project, the file and the owner mapping."""
        parser.add_argument("--project", required=True, help="The project's slug.")
        parser.add_argument("path", help="The CODEOWNERS file to read.")
        parser.add_argument(
            "--map",
            dest="mapping",
            action="append",
            default=[],
            metavar="OWNER=SLUG",
            help="Give OWNER's tests to team SLUG (created if missing); repeatable.",
        )

    def handle(
        self, *args: Any, project: str, path: str, mapping: list[str], **options: Any
    ) -> None:
        """Import the file and print what each team now owns."""
        found = Project.objects.filter(slug=project).first()
        if found is None:
            raise CommandError(f"No project {project!r}; create it with createproject.")
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(f"Cannot read {path}: {exc}") from exc
        summary = ownership.import_codeowners(found, text, mapping=_mapping(mapping))
        for problem in summary.problems:
            self.stderr.write(f"{path}:{problem.line}: {problem.message}")
        self.stdout.write(f"{summary.rules} rules, {summary.teams} teams")
        for slug, count in summary.tests_by_team.items():
            self.stdout.write(f"{slug}: {count} tests")
        self.stdout.write(f"unowned: {summary.unowned} tests")
