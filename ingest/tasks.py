"""Celery tasks: thin wrappers over ``ingest.services``.

Task names are wire format (``flakewatch.dispatch`` sends them by name):
never rename one without leaving an alias.
"""

from __future__ import annotations

import logging

from celery import bootsteps, shared_task
from django.db import DatabaseError, close_old_connections

from flakewatch import dispatch
from flakewatch.celery import app
from ingest import services

logger = logging.getLogger(__name__)


@shared_task(name=dispatch.PROCESS_UPLOAD, **dispatch.RETRY_POLICY)
def process_upload_task(upload_id: int) -> None:
    """Process the upload ``upload_id``: parse it and store its results."""
    services.process_upload(upload_id)


@shared_task(name=dispatch.REQUEUE_STALE_UPLOADS, **dispatch.RETRY_POLICY)
def requeue_stale_uploads_task() -> None:
    """Re-send the uploads whose processing was never sent or never finished."""
    services.requeue_stale_uploads()


class SweepOnConnect(bootsteps.StartStopStep):
    """Sweep each time the worker connects to the broker.

    At start-up and after an outage: uploads accepted while the broker was down, or left behind by
    a dead worker, are re-sent at once rather than at the next beat sweep.
    """

    # After the task consumer, before the event loop (the last step) starts.
    requires = ("celery.worker.consumer.tasks:Tasks",)

    def start(self, parent: object) -> None:  # the Consumer, unused
        """Re-send the uploads left behind, logging rather than raising."""
        close_old_connections()  # this process holds no request to close them
        try:
            services.requeue_stale_uploads()
        except DatabaseError:
            # The worker must still start; the next periodic sweep retries.
            logger.exception("sweep on broker connect failed")


app.steps["consumer"].add(SweepOnConnect)
