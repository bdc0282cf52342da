"""A rater's images: ``/r/<code>/img/<token>``, answered before the rest of the stack.

A rater's judgment brings two to three image requests (the stimuli of the next trial and,
outside ACR, the reference beside them), more than all its other requests together. Through
the whole middleware stack and the URL resolver, the framework around an image cost about
three times the image's own work (the access check and the file). :func:`rater_images`
is a middleware placed right after Django's ``SecurityMiddleware`` (so HTTPS redirects,
HSTS and the security headers apply as to every response) that answers an image it can
serve, with the same bytes and headers as the view :func:`views.stimulus` (both call
:func:`image_response`); everything else goes on through the stack unchanged: any other
path or method, a request the input guard would refuse, an image the session may not see
(the view answers its 404). ``tests/studies/test_image_serving.py`` compares the two paths
response by response.

An image is served only to a session holding a trial that shows it — as the item's a or
b, or (outside ACR) the original shown as the reference beside its image's candidates —
with no name, no dates, cacheable by that browser only. The ETag is the PNG's SHA-256,
which whoever holds the bytes can compute anyway; a matching If-None-Match gets a 304.
"""

from __future__ import annotations

import functools
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponseBase, HttpResponseNotModified
from django.utils.http import parse_etags, quote_etag

from perceptlab.lib import prepared
from perceptlab.serving import stored_file
from perceptlab.studies.guard import InputRejected, check_request
from perceptlab.studies.models import Item, Method, Session, Stimulus, Study, Trial

IMAGE_HEADERS = {
    "Cache-Control": "private, max-age=86400, immutable",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
STIMULUS_TOKEN = re.compile(r"[A-Za-z0-9_-]{22}")  # models.new_token: token_urlsafe(16)
# The URL pattern "r/<uuid:code>/img/<str:token>" (Django's uuid converter: lower-case hex).
IMAGE_PATH = re.compile(
    r"/r/(?P<code>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})/img/"
    r"(?P<token>[^/]+)"
)

# Set on a request whose image this middleware looked up and found none to serve.
LOOKED_UP = "perceptlab_image_missing"

Handler = Callable[[HttpRequest], HttpResponseBase]


def rater_images(get_response: Handler) -> Handler:
    """Middleware: answer a rater's image here; pass everything else on (see the module)."""

    def middleware(request: HttpRequest) -> HttpResponseBase:
        match = IMAGE_PATH.fullmatch(request.path_info)
        if match is None or request.method not in ("GET", "HEAD"):
            return get_response(request)
        request.get_host()  # an unknown Host: DisallowedHost (400), as CommonMiddleware
        try:
            check_request(request, api=False)
        except InputRejected:
            return get_response(request)  # the input guard refuses it, in its words
        response = image_response(request, uuid.UUID(match["code"]), match["token"])
        if response is None:
            setattr(request, LOOKED_UP, True)  # the view answers 404 without asking again
            return get_response(request)
        return response

    return middleware


def image_response(request: HttpRequest, code: uuid.UUID, token: str) -> HttpResponseBase | None:
    """The image under ``token`` for session ``code`` as a complete response (200, or 304
    for a matching If-None-Match), with every header the middleware stack would add;
    None if the session may not see it."""
    found = _stimulus_of(code, token)
    if found is None:
        return None
    etag = quote_etag(found.png_sha256)
    held = parse_etags(request.headers.get("If-None-Match", ""))
    if etag in {tag.removeprefix("W/") for tag in held} or "*" in held:
        response: HttpResponseBase = HttpResponseNotModified()
    else:
        response = stored_file(found.png_name, content_type="image/png")
    response["ETag"] = etag
    for header, value in IMAGE_HEADERS.items():
        response[header] = value
    # What CommonMiddleware and XFrameOptionsMiddleware add on the way out, so the two
    # paths give the same headers (the middleware's responses skip them).
    if not response.streaming:
        response["Content-Length"] = str(len(response.content))  # type: ignore[attr-defined]
    response["X-Frame-Options"] = settings.X_FRAME_OPTIONS
    return response


@dataclass(frozen=True)
class _Shown:
    png_name: str
    png_sha256: str


def _stimulus_of(code: uuid.UUID, token: str) -> _Shown | None:
    """The stimulus under ``token`` if session ``code`` holds a trial showing it, in one
    query; None for a malformed token without a query.

    Written as SQL once (:func:`_shown_sql`): built through the ORM, the statement's
    construction and compilation cost 1–2 ms of CPU per image, several times its
    execution. ``tests/studies/test_catalog.py`` holds it to the ORM's answer.
    """
    if not STIMULUS_TOKEN.fullmatch(token):
        return None
    code_value = Session._meta.get_field("code").get_db_prep_value(code, connection)
    params = [token, code_value, Stimulus.Role.ORIGINAL, Method.ACR, code_value]
    with prepared.cursor(connection) as cursor:
        cursor.execute(_shown_sql(), params)
        row = cursor.fetchone()
    return _Shown(row[0], row[1]) if row else None


@functools.cache
def _shown_sql() -> str:
    stimulus, study = Stimulus._meta.db_table, Study._meta.db_table
    trial, session, item = Trial._meta.db_table, Session._meta.db_table, Item._meta.db_table
    held = (
        f"SELECT 1 FROM {trial} t JOIN {session} se ON se.id = t.session_id "
        f"JOIN {item} i ON i.id = t.item_id WHERE se.code = %s"
    )
    return (
        f"SELECT s.png, s.png_sha256 FROM {stimulus} s JOIN {study} st ON st.id = s.study_id "
        f"WHERE s.token = %s AND ("
        f"EXISTS ({held} AND (i.a_id = s.id OR i.b_id = s.id)) OR ("
        f"s.role = %s AND st.method <> %s AND EXISTS ({held} AND EXISTS ("
        f"SELECT 1 FROM {stimulus} sa WHERE sa.id = i.a_id "
        f"AND sa.study_image_id = s.study_image_id))))"
    )
