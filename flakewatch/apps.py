"""App configuration for flakewatch's core domain."""

from django.apps import AppConfig


class FlakewatchConfig(AppConfig):
    """The project package plus the core domain (app label ``flakewatch``)."""

    name = "flakewatch"
    verbose_name = "flakewatch"
