"""flakewatch: the project package and the core domain."""

from flakewatch.celery import app as celery_app

__all__ = ["celery_app"]
