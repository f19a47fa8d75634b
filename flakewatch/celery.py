"""The Celery application; tasks live in each app's ``tasks.py``."""

import os
from typing import Any

from celery import Celery, Task
from celery.schedules import crontab
from celery.signals import task_postrun, task_prerun
from kombu import Queue

from flakewatch import logs

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


# Nightly at 03:17 UTC (crontab(hour=3, minute=17)): off the hour, when CI is
# quiet. expires: a prune not started within 20 hours waits for the next.
app.conf.beat_schedule = {
    "prune raw data": {
        "task": "flakewatch.prune_raw_data",
        "schedule": crontab(hour="3", minute="17"),
        "options": {"expires": 20 * 3600},
    },
}

# The pipeline's tasks take an upload id first: every line they log carries it.
UPLOAD_TASKS = {"ingest.process_upload", "flakewatch.analyze_upload"}
_upload_bindings: dict[str, object] = {}


@task_prerun.connect
def bind_task_upload(
    task_id: str, task: Task[Any, Any], args: tuple[Any, ...], **kwargs: object
) -> None:
    """Tag the logs of an upload's task with its upload id."""
    if task.name in UPLOAD_TASKS and args:
        _upload_bindings[task_id] = logs.bind_upload(int(args[0]))


@task_postrun.connect
def unbind_task_upload(task_id: str, **kwargs: object) -> None:
    """Stop tagging once the task has returned."""
    token = _upload_bindings.pop(task_id, None)
    if token is not None:
        logs.unbind_upload(token)
