"""App configuration for ingest: accepting and parsing JUnit uploads."""

from django.apps import AppConfig


class IngestConfig(AppConfig):
    """Uploads from CI: accept, store, parse and sweep."""

    name = "ingest"
    verbose_name = "Ingest"
