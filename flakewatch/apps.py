from django.apps import AppConfig


class FlakewatchConfig(AppConfig):
    name = "flakewatch"
    verbose_name = "flakewatch"
