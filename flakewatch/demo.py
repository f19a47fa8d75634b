"""The demo project: a generated CI history a newcomer sees on first start.

``load_demo`` feeds a small history of ``flakewatch.synthetic_history``
(ending now, so every window of the pages shows it) through the real write
path, as uploads of the project ``demo``, and gives its tests to four demo
teams; ``remove_demo`` deletes that project, the demo teams no other project
uses and the demo login, and nothing else.

The demo login (user ``demo``, a random password kept in
``DATA_DIR/demo-login.txt``) exists only on the embedded default (SQLite):
``ensure_demo_login`` refuses on PostgreSQL, which is what production runs,
so no deployment gets a login nobody chose.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import OperationalError, connection, transaction
from django.utils import timezone

from flakewatch import db
from flakewatch.analysis import analyze_upload
from flakewatch.models import Case, CaseResult, Project, Team, Upload
from flakewatch.results import identity_hash
from flakewatch.synthetic_history import History, generate_history

if TYPE_CHECKING:
    from ingest.services import ReceivedFile, UploadMetadata

DEMO_SLUG = "demo"
DEMO_NAME = "Demo: Acme Shop (generated history)"
DEMO_USER = "demo"
DEMO_SEED = 20260105
# Small enough to load in well under a minute on SQLite, large enough to
# hold every kind of test the analytics tells apart.
DEMO_SCALE = {"tests": 120, "commits": 40, "branches": 3, "incidents": 2}
# The generator's test groups, each owned by a demo team; one test in
# UNOWNED_EVERY of the "go" group has no owner, for the ownership page.
DEMO_TEAMS = {
    "unit": ("demo-checkout", "Checkout"),
    "integration": ("demo-payments", "Payments"),
    "js": ("demo-web", "Web storefront"),
    "go": ("demo-platform", "Platform"),
    "rust": ("demo-ledger", "Ledger"),
}
UNOWNED_EVERY = 3
LOCKED_ATTEMPTS = 10


class DemoLoginRefused(Exception):
    """A demo login was asked for outside the embedded default."""


def login_file() -> Path:
    """Return where the embedded default keeps the demo password."""
    return Path(settings.DATA_DIR) / "demo-login.txt"


def ensure_demo_login() -> str:
    """Create the demo user if missing and return its password.

    Only on the embedded default (SQLite); raises ``DemoLoginRefused`` on
    PostgreSQL. The password is random per machine, written once to
    ``login_file()`` (mode 600). Idempotent.
    """
    if db.is_postgresql():
        raise DemoLoginRefused(
            "A demo login exists only on the embedded default (SQLite); on "
            "PostgreSQL create users with `manage.py createsuperuser`."
        )
    path = login_file()
    users = get_user_model().objects
    if path.exists() and users.filter(username=DEMO_USER).exists():
        return path.read_text().strip()
    password = secrets.token_urlsafe(12)
    user = users.filter(username=DEMO_USER).first() or users.model(username=DEMO_USER)
    user.set_password(password)
    user.save()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(password + "\n")
    return password


def demo_history(*, end_at: datetime | None = None) -> History:
    """Return the demo's generated history, its last run at ``end_at``."""
    return generate_history(
        tests=DEMO_SCALE["tests"],
        commits=DEMO_SCALE["commits"],
        branches=DEMO_SCALE["branches"],
        incidents=DEMO_SCALE["incidents"],
        seed=DEMO_SEED,
        end_at=end_at or timezone.now(),
    )


def load_demo(*, progress: Callable[[int, int], None] | None = None) -> Project:
    """Load the demo project afresh and return it.

    Removes an earlier demo first, then stores every upload (each in its own
    transactions, so the upload API is never held up for long) and analyses
    them in run order. ``progress(done, total)`` is called as uploads go in.
    """
    from ingest import services  # ingest imports flakewatch, not at import

    remove_demo(keep_login=True)
    _fewer_syncs()
    history = demo_history()
    project = Project.objects.create(
        slug=DEMO_SLUG, name=DEMO_NAME, default_branch=history.default_branch
    )
    total = len(history.uploads)
    for done, request in enumerate(history.uploads, 1):
        meta = services.UploadMetadata(
            commit_sha=request.commit,
            branch=request.branch,
            build=request.build,
            job=request.job,
            attempt=request.attempt,
            build_url=request.params()["build_url"],
            started_at=datetime.fromisoformat(request.started_at),
        )
        received = services.receive_file(
            f"{request.job}.xml",
            [request.body],
            budget=settings.FLAKEWATCH_MAX_UPLOAD_BYTES,
        )
        # Both steps are safe to repeat.
        _when_unlocked(partial(_store, project, meta, received))
        if progress:
            progress(done, total)
    _analyse_all(project)
    _when_unlocked(partial(_assign_teams, project, history))
    return project


def _fewer_syncs() -> None:
    """On SQLite, stop waiting for the disk after each of the many commits.

    The demo makes hundreds of small transactions (each upload in its own,
    so the upload API never waits long for the write lock); flushing each
    to the disk would take most of the minute. For this connection only,
    commits are handed to the OS without waiting: a power cut during the
    load can lose the demo, a crash of this process loses nothing.
    """
    if not db.is_postgresql():
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA synchronous = OFF")


def _store(project: Project, meta: UploadMetadata, received: ReceivedFile) -> None:
    """Store and process one upload in this process (no task is sent)."""
    from ingest import services

    upload, _ = services.accept_upload(
        project=project, meta=meta, files=[received], enqueue=False
    )
    services.process_upload(upload.pk, enqueue_analysis=False)


def _analyse_all(project: Project) -> None:
    """Analyse the waiting uploads; each call takes a batch in run order."""
    waiting = Upload.objects.filter(
        project=project, status=Upload.Status.DONE, analyzed_at__isnull=True
    )
    while (first := waiting.order_by("run_at", "id").first()) is not None:
        _when_unlocked(partial(analyze_upload, first.pk))


def _when_unlocked(step: Callable[[], None]) -> None:
    """Run ``step``, again if SQLite found the database locked.

    On the embedded default the demo loads while the server answers; when
    both want to write, SQLite may refuse one at once ("database is
    locked") rather than wait. Every step here is safe to repeat.
    """
    for attempt in range(1, LOCKED_ATTEMPTS + 1):
        try:
            step()
            return
        except OperationalError as exc:
            if "locked" not in str(exc) or attempt == LOCKED_ATTEMPTS:
                raise
            time.sleep(0.2 * attempt)  # let the other writer commit


def _assign_teams(project: Project, history: History) -> None:
    """Give each generated test to its group's demo team (a few to none)."""
    teams = {
        group: Team.objects.get_or_create(slug=slug, defaults={"name": name})[0]
        for group, (slug, name) in DEMO_TEAMS.items()
    }
    members: dict[str, list[bytes]] = {group: [] for group in teams}
    for index, (key, truth) in enumerate(sorted(history.truth.items())):
        if truth.group == "go" and index % UNOWNED_EVERY == 0:
            continue
        members[truth.group].append(identity_hash(*key))
    with transaction.atomic():
        for group, hashes in members.items():
            Case.objects.filter(project=project, identity_hash__in=hashes).update(
                team=teams[group]
            )


def remove_demo(*, keep_login: bool = False) -> bool:
    """Delete the demo project, its unused demo teams and the demo login.

    Touches nothing else: a demo team still used by another project's tests
    stays. Returns whether a demo project existed. Idempotent.
    """
    with transaction.atomic():
        # Executions carry no foreign-key constraint and so no cascade.
        uploads = Upload.objects.filter(project__slug=DEMO_SLUG).values("id")
        CaseResult.objects.filter(upload_id__in=uploads).delete()
        deleted, _ = Project.objects.filter(slug=DEMO_SLUG).delete()
        slugs = [slug for slug, _ in DEMO_TEAMS.values()]
        Team.objects.filter(slug__in=slugs, cases__isnull=True).delete()
        if not keep_login:
            get_user_model().objects.filter(username=DEMO_USER).delete()
    if not keep_login:
        login_file().unlink(missing_ok=True)
    return deleted > 0
