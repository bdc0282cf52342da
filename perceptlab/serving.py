"""Stored files to browsers: streamed from Django's storage, or sent by the front server.

``PERCEPTLAB_SENDFILE`` unset: a ``FileResponse`` over the storage's file, never read into
memory (gunicorn hands a local file to ``sendfile(2)``). ``"x-accel-redirect"`` (nginx)
or ``"x-sendfile"`` (Apache, lighttpd): an empty response with the header, and the front
server sends the bytes. Either way the caller decides who may read the file.

Media (``/media/…``: crops, reconstructions, sources) are for staff only — the admin's
previews. Raters never read them: they get their images from ``/r/<code>/img/<token>``.
"""

from __future__ import annotations

import mimetypes
from typing import Any
from urllib.parse import quote

from django.conf import settings
from django.core.files.storage import default_storage
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseBase
from django.views.decorators.http import require_safe

# What the media view lets a browser show inline; anything else is a download.
INLINE_TYPES = frozenset({"image/png", "image/jpeg", "image/webp", "image/avif", "image/jxl"})
MEDIA_CACHE = "private, max-age=3600"


def stored_file(name: str, *, content_type: str) -> HttpResponseBase:
    """The stored file ``name`` as a response without its name or dates; 404 if missing."""
    mode = settings.PERCEPTLAB_SENDFILE
    if mode == "x-accel-redirect":
        response = HttpResponse(content_type=content_type)
        prefix = settings.PERCEPTLAB_SENDFILE_PREFIX.rstrip("/")
        response["X-Accel-Redirect"] = f"{prefix}/{quote(name)}"
        return response
    if mode == "x-sendfile":
        response = HttpResponse(content_type=content_type)
        response["X-Sendfile"] = default_storage.path(name)
        return response
    try:
        handle = default_storage.open(name, "rb")
    except FileNotFoundError:
        raise Http404("no such file") from None
    streamed = FileResponse(handle, content_type=content_type)
    # FileResponse names the file after the handle; stored names are content hashes.
    streamed.headers.pop("Content-Disposition", None)
    return streamed


def safe_name(name: str) -> bool:
    """A relative storage name without ``..``, backslashes or control characters."""
    parts = name.split("/")
    return (
        bool(name)
        and not name.startswith("/")
        and "\\" not in name
        and all(part not in ("", ".", "..") for part in parts)
        and all(ord(char) >= 32 for char in name)
    )


@require_safe
def media(request: HttpRequest, name: str) -> HttpResponseBase:
    """A stored file for a staff member who works on studies or image sets (the admin's
    previews); 404 for everyone else, so the names of stored files are confirmed to
    nobody."""
    if not _sees_media(request.user) or not safe_name(name):
        raise Http404("no such file")
    guessed = mimetypes.guess_type(name)[0] or ""
    inline = guessed in INLINE_TYPES
    response = stored_file(name, content_type=guessed if inline else "application/octet-stream")
    if not inline:
        response["Content-Disposition"] = "attachment"
    response["Cache-Control"] = MEDIA_CACHE
    response["X-Content-Type-Options"] = "nosniff"
    return response


def _sees_media(user: Any) -> bool:
    from perceptlab.studies.access import sees_any

    if not (user.is_active and user.is_staff):
        return False
    return bool(user.has_perm("codecs.view_imageset")) or sees_any(user)
