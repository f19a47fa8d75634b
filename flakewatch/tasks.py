"""Celery tasks of the core: thin wrappers over the analysis.

Task names are wire format: never rename one without leaving an alias.
"""

from celery import shared_task
from django.db import OperationalError

from flakewatch import analysis


# Only transient database errors retry; the function is idempotent. Lowest
# priority (settings: priority_steps): ingesting comes first.
@shared_task(
    name="flakewatch.analyze_upload",
    priority=9,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    retry_jitter=True,
    max_retries=5,
)
def analyze_upload_task(upload_id: int) -> None:
    analysis.analyze_upload(upload_id)
