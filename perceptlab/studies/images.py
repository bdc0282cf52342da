"""A rater's images: ``/r/<code>/img/<token>`` one by one, and ``/r/<code>/imgs/<t1>.<t2>…``
several in one response; answered before the rest of the stack.

A rater's judgment brings two to three image requests (the stimuli of the next trial and,
outside ACR, the reference beside them), more than all its other requests together. Through
the whole middleware stack and the URL resolver, the framework around an image cost about
three times the image's own work (the access check and the file). :func:`rater_images`
is a middleware placed right after Django's ``SecurityMiddleware`` (so HTTPS redirects,
HSTS and the security headers apply as to every response) that answers an image it can
serve, with the same bytes and headers as the views :func:`views.stimulus` and
:func:`views.stimuli` (they call :func:`image_response` and :func:`bundle_response`);
everything else goes on through the stack unchanged: any other path or method, a request
the input guard would refuse, an image the session may not see (the view answers its
404). ``tests/studies/test_image_serving.py`` compares the two paths response by response.

An image is served only to a session holding a trial that shows it — as the item's a or
b, or (outside ACR) the original shown as the reference beside its image's candidates —
with no name, no dates, cacheable by that browser only. The ETag is the PNG's SHA-256,
which whoever holds the bytes can compute anyway; a matching If-None-Match gets a 304.

**Bundles.** The rater page asks for the images of a trial it does not hold yet in one
request, ``/r/<code>/imgs/<token>.<token>[…]`` (at most :data:`MAX_BUNDLE`): every HTTP
request costs the server about as much CPU as the image's own work, and a rater far from
the server waits one round trip instead of two or three. The answer is a
``multipart/form-data`` body (RFC 7578), which browsers parse natively
(``Response.formData()``): one part per token, in the order asked, named by its token, with
the PNG's bytes unchanged. Served only if the session may see every image in it (else
404, as for one image); its ETag is the SHA-256 of the parts' SHA-256s, and its boundary
is derived from them, so the same bundle is the same bytes every time.
"""

from __future__ import annotations

import functools
import hashlib
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse, HttpResponseBase, HttpResponseNotModified
from django.utils.http import parse_etags, quote_etag

from perceptlab.codecs.files import read_bytes
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
BUNDLE_PATH = re.compile(
    r"/r/(?P<code>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})/imgs/"
    r"(?P<tokens>[^/]+)"
)
# Two trials' images (the trial on screen and the next, each with its reference, a and b):
# what a page that lost its images (a reload) asks for at once.
MAX_BUNDLE = 6
BUNDLE_SEPARATOR = "."

# Set on a request whose image this middleware looked up and found none to serve.
LOOKED_UP = "perceptlab_image_missing"

Handler = Callable[[HttpRequest], HttpResponseBase]


def rater_images(get_response: Handler) -> Handler:
    """Middleware: answer a rater's image here; pass everything else on (see the module)."""

    def middleware(request: HttpRequest) -> HttpResponseBase:
        if request.method not in ("GET", "HEAD") or not request.path_info.startswith("/r/"):
            return get_response(request)
        path = request.path_info
        one = IMAGE_PATH.fullmatch(path)
        several = None if one else BUNDLE_PATH.fullmatch(path)
        if one is None and several is None:
            return get_response(request)
        request.get_host()  # an unknown Host: DisallowedHost (400), as CommonMiddleware
        try:
            check_request(request, api=False)
        except InputRejected:
            return get_response(request)  # the input guard refuses it, in its words
        if one is not None:
            response = image_response(request, uuid.UUID(one["code"]), one["token"])
        else:
            assert several is not None
            response = bundle_response(request, uuid.UUID(several["code"]), several["tokens"])
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
    if _holds(request, etag):
        response: HttpResponseBase = HttpResponseNotModified()
    else:
        response = stored_file(found.png_name, content_type="image/png")
    return _finished(response, etag)


def bundle_response(request: HttpRequest, code: uuid.UUID, tokens: str) -> HttpResponseBase | None:
    """The images under ``tokens`` (joined by :data:`BUNDLE_SEPARATOR`) for session
    ``code`` as one ``multipart/form-data`` response (200, or 304 for a matching
    If-None-Match), headers as :func:`image_response`'s; None if the list is malformed
    (empty, a repeat, more than :data:`MAX_BUNDLE`) or the session may not see one of
    them. The PNGs are read whole: a few crops, never more than six."""
    names = tokens.split(BUNDLE_SEPARATOR)
    if len(names) > MAX_BUNDLE or len(set(names)) != len(names):
        return None
    found = _stimuli_of(code, names)
    if found is None:
        return None
    shown = [found[name] for name in names]
    digest = hashlib.sha256("\n".join(s.png_sha256 for s in shown).encode()).hexdigest()
    etag = quote_etag(digest)
    if _holds(request, etag):
        return _finished(HttpResponseNotModified(), etag)
    try:
        parts = [(name, read_bytes(s.png_name)) for name, s in zip(names, shown, strict=True)]
    except FileNotFoundError:
        return None  # a file gone from the storage: as a missing image, 404
    body, boundary = form_data(parts, seed=digest)
    response = HttpResponse(body, content_type=f"multipart/form-data; boundary={boundary}")
    return _finished(response, etag)


def form_data(parts: list[tuple[str, bytes]], *, seed: str) -> tuple[bytes, str]:
    """``parts`` (name, PNG bytes) as a ``multipart/form-data`` body (RFC 7578) and its
    boundary, which is made from ``seed`` and occurs in none of the parts."""
    for attempt in range(1000):
        boundary = f"perceptlab-{hashlib.sha256(f'{seed}:{attempt}'.encode()).hexdigest()[:40]}"
        delimiter = f"--{boundary}".encode()
        if not any(delimiter in data for _, data in parts):
            break
    else:  # pragma: no cover - 1000 collisions of a 160-bit string
        raise ValueError("no boundary found outside the parts")
    chunks: list[bytes] = []
    for name, data in parts:
        head = (
            f'Content-Disposition: form-data; name="{name}"; filename="{name}.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        )
        chunks += [delimiter, b"\r\n", head.encode(), data, b"\r\n"]
    chunks += [delimiter, b"--\r\n"]
    return b"".join(chunks), boundary


def _holds(request: HttpRequest, etag: str) -> bool:
    """The browser's If-None-Match names ``etag`` (weakly compared) or ``*``."""
    held = parse_etags(request.headers.get("If-None-Match", ""))
    return etag in {tag.removeprefix("W/") for tag in held} or "*" in held


def _finished(response: HttpResponseBase, etag: str) -> HttpResponseBase:
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
    query; None for a malformed token without a query."""
    found = _stimuli_of(code, [token])
    return None if found is None else found[token]


def _stimuli_of(code: uuid.UUID, tokens: list[str]) -> dict[str, _Shown] | None:
    """The stimuli under ``tokens`` by token if session ``code`` may see every one of
    them, in one query; None if it may not, or without a query for a malformed token.

    Written as SQL once per number of tokens (:func:`_shown_sql`): built through the ORM,
    the statement's construction and compilation cost 1–2 ms of CPU per image, several
    times its execution. ``tests/studies/test_catalog.py`` holds it to the ORM's answer.
    """
    if not tokens or not all(STIMULUS_TOKEN.fullmatch(token) for token in tokens):
        return None
    code_value = Session._meta.get_field("code").get_db_prep_value(code, connection)
    params = [*tokens, code_value, Stimulus.Role.ORIGINAL, Method.ACR, code_value]
    with prepared.cursor(connection) as cursor:
        cursor.execute(_shown_sql(len(tokens)), params)
        rows = cursor.fetchall()
    found = {row[0]: _Shown(row[1], row[2]) for row in rows}
    return found if len(found) == len(set(tokens)) else None


@functools.cache
def _shown_sql(tokens: int) -> str:
    stimulus, study = Stimulus._meta.db_table, Study._meta.db_table
    trial, session, item = Trial._meta.db_table, Session._meta.db_table, Item._meta.db_table
    held = (
        f"SELECT 1 FROM {trial} t JOIN {session} se ON se.id = t.session_id "
        f"JOIN {item} i ON i.id = t.item_id WHERE se.code = %s"
    )
    listed = ", ".join(["%s"] * tokens)
    return (
        f"SELECT s.token, s.png, s.png_sha256 FROM {stimulus} s "
        f"JOIN {study} st ON st.id = s.study_id "
        f"WHERE s.token IN ({listed}) AND ("
        f"EXISTS ({held} AND (i.a_id = s.id OR i.b_id = s.id)) OR ("
        f"s.role = %s AND st.method <> %s AND EXISTS ({held} AND EXISTS ("
        f"SELECT 1 FROM {stimulus} sa WHERE sa.id = i.a_id "
        f"AND sa.study_image_id = s.study_image_id))))"
    )
