from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from flakewatch.analysis import recompute_project
from flakewatch.models import Project, Upload


class Command(BaseCommand):
    help = "Rebuild a project's verdicts, rollups and suite figures from raw results."

    def add_arguments(self, parser):
        parser.add_argument("--project", required=True, help="The project's slug.")

    def handle(self, *args, project, **options):
        target = Project.objects.filter(slug=project).first()
        if target is None:
            raise CommandError(f"No project {project!r}.")
        total = Upload.objects.filter(project=target, status=Upload.Status.DONE).count()
        with tqdm(
            total=total, desc="replaying", unit="upload", file=self.stderr
        ) as bar:
            replayed = recompute_project(target, progress=bar.update)
        self.stdout.write(f"recomputed {project}: {replayed} uploads replayed")
