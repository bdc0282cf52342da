"""System checks for configuration problems, with stable ids.

codecs.E001  a codec binary set explicitly (BPGENC, ...) does not exist or is not executable
codecs.I001  a codec binary is not on PATH (its codec is listed as unavailable)
codecs.E010  PERCEPTLAB_TASKS names an unknown task backend
codecs.E020  the media root cannot be created or written
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Info, Tags, register

TASK_BACKENDS = {"database", "immediate", "dummy"}


@register(Tags.compatibility)
def check_codec_binaries(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    for key, value in settings.CODEC_BINARIES.items():
        env = key.upper()  # BPGENC, BPGDEC, VVENCAPP, VVDECAPP
        explicit = os.sep in value
        if explicit and not (Path(value).is_file() and os.access(value, os.X_OK)):
            messages.append(
                Error(
                    f"binary {key!r} not found or not executable at {value}",
                    hint=f"set {env} to the path of {key}, or unset it to search PATH",
                    id="codecs.E001",
                )
            )
        elif not explicit and shutil.which(value) is None:
            messages.append(
                Info(
                    f"binary {value!r} not found on PATH; its codec is unavailable",
                    hint=f"install it or set {env}=/path/to/{key}",
                    id="codecs.I001",
                )
            )
    return messages


@register(Tags.compatibility)
def check_task_backend(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    name = settings.TASKS_BACKEND_NAME
    if name in TASK_BACKENDS or "." in name:
        return []
    return [
        Error(
            f"PERCEPTLAB_TASKS={name!r} is not a task backend",
            hint=f"use one of {sorted(TASK_BACKENDS)} or a dotted backend path",
            id="codecs.E010",
        )
    ]


@register(Tags.files)
def check_media_root(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    backend = settings.STORAGES["default"]["BACKEND"]
    if not backend.endswith("FileSystemStorage"):
        return []
    root = Path(settings.MEDIA_ROOT)
    try:
        root.mkdir(parents=True, exist_ok=True)
        writable = os.access(root, os.W_OK)
    except OSError:
        writable = False
    if writable:
        return []
    return [
        Error(
            f"media root {root} cannot be created or written",
            hint="set PERCEPTLAB_MEDIA_ROOT to a writable directory",
            id="codecs.E020",
        )
    ]
