"""Production system checks (``manage.py check --deploy``; gunicorn runs them at start).

Tagged ``production``: ``perceptlab/gunicorn_conf.py`` refuses to start on any error among
them, and ``scripts/serve.sh`` runs the whole ``check --deploy`` first.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, register

PRODUCTION = "production"


@register(Tags.security, PRODUCTION, deploy=True)
def check_secret_key(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """The development key is in the repository: sessions and signed cookies made with it
    can be forged by anyone."""
    if settings.SECRET_KEY != settings.DEV_SECRET_KEY:
        return []
    return [
        Error(
            "DJANGO_SECRET_KEY is not set: the development key is public",
            hint="set DJANGO_SECRET_KEY to a long random value, e.g. the output of "
            "python -c 'import secrets; print(secrets.token_urlsafe(50))'",
            id="perceptlab.E001",
        )
    ]


@register(Tags.staticfiles, PRODUCTION, deploy=True)
def check_static_manifest(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """With hashed static files on, every page needs collectstatic's manifest."""
    manifest = Path(settings.STATIC_ROOT) / "staticfiles.json"
    if not settings.STATIC_MANIFEST or manifest.exists():
        return []
    return [
        Error(
            f"PERCEPTLAB_STATIC_MANIFEST is on but {manifest} does not exist",
            hint="run `manage.py collectstatic --noinput` (scripts/serve.sh does)",
            id="perceptlab.E002",
        )
    ]
