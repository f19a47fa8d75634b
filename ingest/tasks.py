"""Celery tasks: thin wrappers over ``ingest.services``.

Task names are wire format: never rename one without leaving an alias.
"""

from celery import shared_task
from celery.signals import worker_ready
from django.db import OperationalError

from ingest import services


# Only transient database errors retry; unreadable reports are final and are
# recorded on the upload by the service, never raised.
@shared_task(
    name="ingest.process_upload",
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    retry_jitter=True,
    max_retries=5,
)
def process_upload_task(upload_id: int) -> None:
    services.process_upload(upload_id)


@shared_task(name="ingest.requeue_stale_uploads")
def requeue_stale_uploads_task() -> None:
    services.requeue_stale_uploads()


@worker_ready.connect
def requeue_on_worker_start(**kwargs) -> None:
    """Pick up uploads a dead worker left behind without waiting for beat."""
    services.requeue_stale_uploads()
