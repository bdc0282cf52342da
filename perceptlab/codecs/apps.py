from __future__ import annotations

from django.apps import AppConfig


class CodecsConfig(AppConfig):
    name = "perceptlab.codecs"
    label = "codecs"
    verbose_name = "Images, codecs and reconstructions"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from perceptlab.codecs import checks  # noqa: F401  (registers the system checks)
        from perceptlab.codecs.neural.baselines import zoo_weight_files
        from perceptlab.lib.weights import register_files

        register_files(zoo_weight_files())  # fetch_weights --only <zoo architecture>

        from perceptlab.codecs.neural.msillm import msillm_weight_files

        register_files(msillm_weight_files())  # fetch_weights --only msillm / msillm-nogan
