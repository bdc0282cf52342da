"""``manage.py train_codec NAME --data DIR --steps N``: train a neural codec's checkpoint.

The loop is :func:`perceptlab.codecs.neural.training.train` (also runnable without the
platform as ``python -m perceptlab.codecs.neural.training``). Checkpoints go to
``PERCEPTLAB_NEURAL_DIR`` unless ``--out`` says otherwise; the codec then finds them by name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser


class Command(BaseCommand):
    help = (
        "Train a neural codec (hific, hific-sparse, gc, tunable, rdo-gllmm) on a folder of "
        "images: checkpoints, --resume, a progress bar and a JSON-lines loss log."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        from perceptlab.codecs.neural.training import add_arguments

        add_arguments(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        from perceptlab.codecs.neural.codec import forget_models, torch_available

        state = torch_available()
        if not state.available:
            raise CommandError(state.reason)
        from perceptlab.codecs.neural.training import TrainingError, options_from, train

        try:
            path = train(
                options_from(options, Path(settings.PERCEPTLAB_NEURAL_DIR)),
                echo=lambda text: self.stdout.write(text),
            )
        except TrainingError as error:
            raise CommandError(str(error)) from None
        forget_models()  # a codec in this process must not keep older weights of that name
        self.stdout.write(self.style.SUCCESS(f"checkpoint: {path}"))
