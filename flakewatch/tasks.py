"""Celery tasks of the core: thin wrappers over analysis, digests, notifications.

Task names are wire format: never rename one without leaving an alias.
"""

from celery import shared_task

from flakewatch import analysis, digests, dispatch, notifications, retention


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
    **dispatch.RETRY_POLICY,
)
def send_weekly_digest_task(team_id: int, week_start: str) -> None:
    """Send team ``team_id``'s digest of the week starting ``week_start``."""
    digests.send_weekly_digest(team_id, week_start)


@shared_task(
    name=dispatch.DELIVER_NOTIFICATIONS,
    **dispatch.RETRY_POLICY,
)
def deliver_notifications_task(webhook_id: int, upload_id: int) -> None:
    """Post the verdict changes of ``upload_id``'s batch to one webhook."""
    notifications.deliver_notifications(webhook_id, upload_id)


@shared_task(
    name=dispatch.SEND_DUE_DIGESTS,
    **dispatch.RETRY_POLICY,
)
def send_due_digests_task() -> None:
    """Send every team's digest that is due and not yet sent."""
    digests.send_due_digests()


@shared_task(
    name=dispatch.RESEND_PENDING_NOTIFICATIONS,
    **dispatch.RETRY_POLICY,
)
def resend_pending_notifications_task() -> None:
    """Post again the notifications whose backoff is over."""
    notifications.resend_pending_notifications()


@shared_task(name=dispatch.PRUNE_RAW_DATA, **dispatch.RETRY_POLICY)
def prune_raw_data_task() -> None:
    """Prune raw data past its retention (beat: nightly, flakewatch/celery.py)."""
    retention.prune_raw_data()
