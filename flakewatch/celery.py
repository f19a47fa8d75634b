"""The Celery application; tasks live in each app's ``tasks.py``."""

import os

from celery import Celery
from celery.schedules import crontab
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "flakewatch.settings")

app = Celery("flakewatch")
app.config_from_object("django.conf:settings", namespace="CELERY")
# An explicit queue list: a typo in a route fails loudly instead of creating a
# queue no worker reads (task_create_missing_queues is off).
app.conf.task_queues = [Queue("ingest"), Queue("celery")]
app.autodiscover_tasks()


@app.on_after_finalize.connect
def schedule_sweeper(sender: Celery, **kwargs: object) -> None:
    """Schedule the upload sweeper on beat every FLAKEWATCH_SWEEP_MINUTES."""
    from django.conf import settings

    minutes = settings.FLAKEWATCH_SWEEP_MINUTES
    # crontab(minute="*/1"), the default: second 0 of every minute, UTC. With
    # FLAKEWATCH_SWEEP_MINUTES=10, "*/10": :00, :10, ... :50 of every hour.
    # expires: a sweep still waiting when the next is due is superseded by it.
    sender.add_periodic_task(
        crontab(minute=f"*/{minutes}"),
        sender.signature("ingest.requeue_stale_uploads"),
        name="requeue stale uploads",
        expires=minutes * 60,
    )


@app.on_after_finalize.connect
def schedule_digests(sender: Celery, **kwargs: object) -> None:
    """Schedule the weekly digest check and the notification resend on beat."""
    from django.conf import settings

    minute = int(settings.FLAKEWATCH_DIGEST_TIME.split(":")[1]) % 15
    # Every 15 minutes at the digest time's minute (09:00: :00, :15, :30, :45
    # of every hour, UTC), so the digest moment in any zone (all UTC offsets
    # are whole quarter hours) is a run; send_due_digests acts only in the
    # day after the moment, in FLAKEWATCH_DIGEST_TIMEZONE. Beat's crontab
    # runs in one zone for all entries, hence the check in the function.
    # expires: a check still queued when the next is due is superseded by it.
    sender.add_periodic_task(
        crontab(minute=f"{minute}-59/15"),
        sender.signature("flakewatch.send_due_digests"),
        name="send due weekly digests",
        expires=15 * 60,
    )
    # crontab(minute="*/10"): :00, :10, ... :50 of every hour; re-sends
    # webhook messages whose on-commit task was lost.
    sender.add_periodic_task(
        crontab(minute="*/10"),
        sender.signature("flakewatch.resend_pending_notifications"),
        name="resend pending notifications",
        expires=10 * 60,
    )
