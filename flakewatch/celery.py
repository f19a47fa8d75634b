"""The Celery application; tasks live in each app's ``tasks.py``."""

import os

from celery import Celery
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "flakewatch.settings")

app = Celery("flakewatch")
app.config_from_object("django.conf:settings", namespace="CELERY")
# An explicit queue list: a typo in a route fails loudly instead of creating a
# queue no worker reads (task_create_missing_queues is off).
app.conf.task_queues = [Queue("ingest"), Queue("celery")]
app.autodiscover_tasks()


@app.on_after_finalize.connect
def schedule_sweeper(sender: Celery, **kwargs) -> None:
    """Run the upload sweeper every FLAKEWATCH_SWEEP_SECONDS (default 60 s)."""
    from django.conf import settings

    every = settings.FLAKEWATCH_SWEEP_SECONDS
    # expires: a sweep that waited a whole period is superseded by the next one.
    sender.add_periodic_task(
        every,
        sender.signature("ingest.requeue_stale_uploads", options={"expires": every}),
        name="requeue stale uploads",
    )
