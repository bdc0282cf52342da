"""System checks for configuration problems, with stable ids.

codecs.E001  a codec binary set explicitly (BPGENC, ...) does not exist or is not executable
codecs.I001  a codec binary is not on PATH (its codec is listed as unavailable)
codecs.E010  PERCEPTLAB_TASKS names an unknown task backend
codecs.E020  the media root cannot be created or written
codecs.W050-W055  a codec plugin is refused or broken (see perceptlab/codecs/plugins.py)
codecs.W030  a command-line codec entry (TOML) is malformed, or its file cannot be read
codecs.W031  a command-line codec's slug is already taken (by a built-in or another file)
codecs.W032  an imported codec is hidden by a registered codec of the same slug (a database
             check: ``check --database default``, and ``migrate``)
(Warnings, as for plugins: the entry is left out and the platform still runs; a user's bad
file must not stop runserver, migrate or db_worker. ``check --fail-level WARNING`` makes
them fatal in CI.)
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Info, Tags, Warning, register

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


@register(Tags.compatibility)
def check_codec_plugins(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Imports every installed plugin; warnings, since a broken package must not stop the site."""
    from perceptlab.codecs.plugins import plugin_problems

    return [
        Warning(
            f"codec plugin {error.slug!r} from {error.plugin.origin}: {error.problem}",
            hint=error.fix,
            id=error.check_id,
        )
        for error in plugin_problems()
    ]


@register(Tags.database)
def check_imported_codec_slugs(
    app_configs: Any = None, databases: Any = None, **kwargs: Any
) -> list[CheckMessage]:
    """An imported codec whose slug a plugin or TOML entry took since: the registered
    codec wins, silently for whoever meant the imported one."""
    if not databases:
        return []
    from django.db import DatabaseError

    from perceptlab.codecs.imported import hidden_problem, hidden_slugs

    try:
        slugs = hidden_slugs()
    except DatabaseError:  # not migrated yet: nothing imported
        return []
    messages: list[CheckMessage] = []
    for slug in slugs:
        problem, fix = hidden_problem(slug)
        messages.append(Warning(problem, hint=fix, id="codecs.W032"))
    return messages


@register(Tags.compatibility)
def check_commandline_codecs(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Entries of the TOML codec files that were left out, naming file, entry and fix."""
    from perceptlab.codecs.commandline import load_problems

    return [
        Warning(
            str(problem),
            hint=problem.fix,
            id="codecs.W031" if problem.clash else "codecs.W030",
        )
        for problem in load_problems()
    ]
