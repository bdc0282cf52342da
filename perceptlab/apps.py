"""The project's own app: production checks and the staff-only media view (serving.py)."""

from __future__ import annotations

from django.apps import AppConfig


class PerceptLabConfig(AppConfig):
    name = "perceptlab"
    label = "perceptlab"
    verbose_name = "PerceptLab"

    def ready(self) -> None:
        from perceptlab import checks  # noqa: F401  (registers the system checks)
