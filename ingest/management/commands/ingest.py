"""``manage.py ingest``: ingest saved JUnit XML files in-process."""

from argparse import ArgumentParser
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from flakewatch.models import Project, Upload
from ingest import services
from ingest.serializers import read_metadata


class Command(BaseCommand):
    """Ingest report files as one upload and analyse it, without a worker."""

    help = (
        "Ingest saved JUnit XML files as one upload and analyse it, in-process "
        "(no worker needed)."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        """Take the files and the upload's metadata."""
        parser.add_argument(
            "files", nargs="+", type=Path, help="JUnit XML files (.xml or .gz)."
        )
        parser.add_argument("--project", required=True, help="The project's slug.")
        parser.add_argument(
            "--commit", required=True, help="The commit the tests ran on."
        )
        parser.add_argument(
            "--branch", required=True, help="The branch of that commit."
        )
        parser.add_argument("--build", required=True, help="The CI build id.")
        parser.add_argument("--job", required=True, help="The CI job name.")
        parser.add_argument(
            "--attempt", default="1", help="The job's re-run counter (default 1)."
        )
        parser.add_argument("--build-url", default="", help="Link to the CI job.")
        parser.add_argument(
            "--started-at", default="", help="ISO 8601 start time of the job."
        )

    def handle(
        self, *args: str, files: list[Path], project: str, **options: str
    ) -> None:
        """Ingest the files, print the upload's counts and its problems."""
        target = Project.objects.filter(slug=project).first()
        if target is None:
            raise CommandError(f"No project {project!r}; create it with createproject.")
        try:
            meta = read_metadata(
                {
                    "commit": options["commit"],
                    "branch": options["branch"],
                    "build": options["build"],
                    "job": options["job"],
                    "attempt": options["attempt"],
                    "build_url": options["build_url"],
                    "started_at": options["started_at"],
                }
            )
            budget = settings.FLAKEWATCH_MAX_UPLOAD_BYTES
            received = []
            for path in tqdm(files, desc="reading", unit="file", file=self.stderr):
                if not path.is_file():
                    raise CommandError(f"{path} is not a file.")
                with path.open("rb") as handle:
                    chunks = iter(lambda: handle.read(services.READ_CHUNK), b"")
                    received.append(
                        services.receive_file(path.name, chunks, budget=budget)
                    )
                budget -= received[-1].size_bytes
            seen = services.find_upload(target, meta=meta, files=received) is not None
            with tqdm(
                total=1, desc="ingesting", unit="upload", file=self.stderr
            ) as bar:
                upload = services.ingest_now(target, meta=meta, files=received)
                bar.update()
        except services.UploadError as exc:
            raise CommandError(exc.detail) from None
        self.stdout.write(
            f"upload {upload.pk}: {upload.status}, {upload.tests_count} tests, "
            f"{upload.failures_count} failures"
            + (" (already ingested)" if seen else "")
        )
        for problem in upload.errors:
            self.stderr.write(f"  error: {problem}")
        for warning in upload.warnings:
            self.stderr.write(f"  warning: {warning}")
        if upload.status == Upload.Status.FAILED:
            raise CommandError("the upload failed; see the errors above")
