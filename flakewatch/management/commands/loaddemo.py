"""``manage.py loaddemo``: load, reload or remove the demo project."""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from flakewatch import db, demo
from flakewatch.models import Project

LOGIN_URL = "http://127.0.0.1:8000/accounts/login/"


class Command(BaseCommand):
    """Load the generated demo project, or remove it."""

    help = "Load the demo project (a generated CI history) afresh, or remove it."

    def add_arguments(self, parser: CommandParser) -> None:
        """Declare the options."""
        parser.add_argument(
            "--remove",
            action="store_true",
            help="Delete the demo project, its demo teams and the demo login only.",
        )
        parser.add_argument(
            "--first-start",
            action="store_true",
            help=(
                "For `make run`: on the embedded default, print the demo login "
                "and, if the database has no project yet, load the demo in a "
                "background process."
            ),
        )

    def handle(
        self, *args: Any, remove: bool, first_start: bool, **options: Any
    ) -> None:
        """Load, remove, or (first start) offer the demo."""
        if remove:
            found = demo.remove_demo()
            self.stdout.write(
                "Removed the demo project." if found else "No demo project to remove."
            )
        elif first_start:
            self._first_start()
        else:
            self._load()

    def _load(self) -> None:
        started = time.monotonic()
        project = demo.load_demo()
        self.stdout.write(
            f"Loaded the demo project {project.slug!r} in "
            f"{time.monotonic() - started:.0f} s."
        )

    def _first_start(self) -> None:
        if db.is_postgresql():
            return  # production: no demo login, no demo unless asked for
        password = demo.ensure_demo_login()
        self.stdout.write(
            f"\n  flakewatch demo login: {LOGIN_URL}\n"
            f"  user {demo.DEMO_USER}, password {password}\n"
            f"  (embedded default only; remove with `manage.py loaddemo --remove`)\n"
        )
        if Project.objects.exists():
            return
        log = settings.DATA_DIR / "demo-load.log"
        self.stdout.write(f"  Loading the demo project in the background ({log}).\n")
        with open(log, "w") as out:
            # A child of its own session: the server starts at once, and the
            # upload API answers while the demo goes in.
            subprocess.Popen(
                [sys.executable, "manage.py", "loaddemo"],
                cwd=settings.BASE_DIR,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
