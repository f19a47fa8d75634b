"""Celery tasks of the core: thin wrappers over the analysis.

Task names are wire format: never rename one without leaving an alias.
"""

from celery import shared_task

from flakewatch import analysis, dispatch


# Lowest priority (settings: priority_steps): ingesting comes first.
@shared_task(
    name=dispatch.ANALYZE_UPLOAD,
    priority=dispatch.ANALYSIS_PRIORITY,
    **dispatch.RETRY_POLICY,
)
def analyze_upload_task(upload_id: int) -> None:
    """Analyse the upload ``upload_id``."""
    analysis.analyze_upload(upload_id)
