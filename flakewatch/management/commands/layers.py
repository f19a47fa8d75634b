"""``manage.py layers``: a project's layer rules from a rule file."""

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from flakewatch import ownership
from flakewatch.layers import LayerRulesError
from flakewatch.models import Project


class Command(BaseCommand):
    """Replace a project's layer rules and re-classify its tests."""

    help = "Set a project's layer rules (applied after the defaults) from a file."

    def add_arguments(self, parser: CommandParser) -> None:
        """Declare the project and the rule file."""
        parser.add_argument("--project", required=True, help="The project's slug.")
        parser.add_argument(
            "rules_file",
            help="One '<pattern> <layer>' a line; see flakewatch/layers.py.",
        )

    def handle(self, *args: Any, project: str, rules_file: str, **options: Any) -> None:
        """Replace the rules and print the tests per layer."""
        found = Project.objects.filter(slug=project).first()
        if found is None:
            raise CommandError(f"No project {project!r}; create it with createproject.")
        try:
            text = Path(rules_file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(f"Cannot read {rules_file}: {exc}") from exc
        try:
            counts = ownership.replace_layer_rules(found, text)
        except LayerRulesError as exc:
            raise CommandError(f"{rules_file}: {exc}") from exc
        for layer, count in counts.items():
            self.stdout.write(f"{layer}: {count} tests")
