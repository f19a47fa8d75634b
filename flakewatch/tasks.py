"""Celery tasks of the core: thin wrappers over analysis, digests, notifications.

Task names are wire format: never rename one without leaving an alias.
"""

from celery import shared_task
from django.db import OperationalError

from flakewatch import analysis, digests, dispatch, notifications


# Lowest priority (settings: priority_steps): ingesting comes first.
@shared_task(
    name=dispatch.ANALYZE_UPLOAD,
    priority=dispatch.ANALYSIS_PRIORITY,
    **dispatch.RETRY_POLICY,
)
def analyze_upload_task(upload_id: int) -> None:
    """Analyse the upload ``upload_id``."""
    analysis.analyze_upload(upload_id)


# A mail server's or webhook's failure is recorded on its row, never raised:
# beat's sweeps retry it after the row's backoff, with tasks in-process too.
@shared_task(
    name=dispatch.SEND_WEEKLY_DIGEST,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    retry_jitter=True,
    max_retries=5,
)
def send_weekly_digest_task(team_id: int, week_start: str) -> None:
    digests.send_weekly_digest(team_id, week_start)


@shared_task(
    name=dispatch.DELIVER_NOTIFICATIONS,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    retry_jitter=True,
    max_retries=5,
)
def deliver_notifications_task(webhook_id: int, upload_id: int) -> None:
    notifications.deliver_notifications(webhook_id, upload_id)


@shared_task(
    name=dispatch.SEND_DUE_DIGESTS,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    retry_jitter=True,
    max_retries=5,
)
def send_due_digests_task() -> None:
    digests.send_due_digests()


@shared_task(
    name=dispatch.RESEND_PENDING_NOTIFICATIONS,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    retry_jitter=True,
    max_retries=5,
)
def resend_pending_notifications_task() -> None:
    notifications.resend_pending_notifications()
