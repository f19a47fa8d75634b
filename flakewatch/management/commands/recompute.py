"""``manage.py recompute``: rebuild a project's analysis from its raw results."""

from argparse import ArgumentParser

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from flakewatch.analysis import recompute_project
from flakewatch.models import Project, Upload


class Command(BaseCommand):
    """Replay a project's uploads into its verdicts, rollups and suite figures."""

    help = "Rebuild a project's verdicts, rollups and suite figures from raw results."

    def add_arguments(self, parser: ArgumentParser) -> None:
        """Take the project's slug."""
        parser.add_argument("--project", required=True, help="The project's slug.")

    def handle(self, *args: str, project: str, **options: object) -> None:
        """Replay the project's uploads, with a progress bar on stderr."""
        target = Project.objects.filter(slug=project).first()
        if target is None:
            raise CommandError(f"No project {project!r}.")
        total = Upload.objects.filter(project=target, status=Upload.Status.DONE).count()
        with tqdm(
            total=total, desc="replaying", unit="upload", file=self.stderr
        ) as bar:
            replayed = recompute_project(target, progress=bar.update)
        self.stdout.write(f"recomputed {project}: {replayed} uploads replayed")
