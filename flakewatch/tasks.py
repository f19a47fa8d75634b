"""Celery tasks of the core: thin wrappers over the analysis.

Task names are wire format: never rename one without leaving an alias.
"""

from celery import shared_task

from flakewatch import analysis, dispatch, retention


# Lowest priority (settings: priority_steps): ingesting comes first.
@shared_task(
    name=dispatch.ANALYZE_UPLOAD,
    priority=dispatch.ANALYSIS_PRIORITY,
    **dispatch.RETRY_POLICY,
)
def analyze_upload_task(upload_id: int) -> None:
    analysis.analyze_upload(upload_id)


@shared_task(name=dispatch.PRUNE_RAW_DATA, **dispatch.RETRY_POLICY)
def prune_raw_data_task() -> None:
    """Prune raw data past its retention (beat: nightly, flakewatch/celery.py)."""
    retention.prune_raw_data()
