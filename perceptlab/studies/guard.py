"""Input guard for the rater-facing paths (``/study/…`` and ``/r/…``).

Raters reach these URLs from anywhere, so hostile input must end as a clear 4xx before a
view, a form or the database sees it:

* a NUL character or a lone UTF-16 surrogate (neither can be stored in a PostgreSQL
  ``text`` or ``jsonb`` value) in the path, a header, a query parameter, a form field or a
  JSON string → 400;
* a body over :data:`MAX_BODY_BYTES` (a judgment is under 4 KiB), by its Content-Length
  or by what was actually read → 413;
* JSON nested deeper than :data:`MAX_JSON_DEPTH` in a JSON body, or in any text field of
  the trial app's API (``viewing`` may arrive as JSON text) → 400, before ``json.loads``
  can recurse into a ``RecursionError``;
* Django's own refusals while reading a body (``RequestDataTooBig``,
  ``TooManyFieldsSent``, a malformed multipart body) → 413/400 instead of a 500.

The trial app's API (``/r/<code>/state`` and ``/r/<code>/judge``) always answers JSON:
these refusals, and any 4xx/5xx a view or another middleware answered in HTML (CSRF's
403, ``require_POST``'s 405), become ``{"ok": false, "code": …, "message": …}``. Pages
get the friendly ``400.html``.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from django.core.exceptions import BadRequest, RequestDataTooBig, SuspiciousOperation
from django.http import HttpRequest, HttpResponse, JsonResponse, UnreadablePostError
from django.http.multipartparser import MultiPartParserError
from django.shortcuts import render

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 16 * 1024
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
MAX_JSON_DEPTH = 8

RATER_PATH = re.compile(r"/(?:study|r)/")
API_PATH = re.compile(r"/r/[^/]*/(?:state|judge)")
# What PostgreSQL text cannot hold: NUL, and lone surrogates (not encodable as UTF-8).
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")

API_MESSAGES: dict[int, tuple[str, str]] = {
    400: ("bad_request", "This request could not be understood."),
    # CSRF's refusal: the page's token or session cookie expired (app.js says the same).
    403: ("expired", "This page has expired. Please reload it to continue; your answers are kept."),
    404: ("not_found", "This study link is not valid."),
    405: ("method_not_allowed", "This address does not accept this kind of request."),
    413: ("too_large", "This request is too large."),
    500: ("server_error", "Something went wrong on our side. Please wait a moment."),
}

Handler = Callable[[HttpRequest], HttpResponse]


class InputRejected(Exception):
    """A request the guard refuses: HTTP ``status``, a stable ``code`` and a plain message."""

    def __init__(self, code: str, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


def input_guard(get_response: Handler) -> Handler:
    """Middleware: refuse hostile input on the rater paths; JSON errors on their API."""

    def middleware(request: HttpRequest) -> HttpResponse:
        path = request.path_info
        if not RATER_PATH.match(path):
            return get_response(request)
        api = API_PATH.fullmatch(path) is not None
        try:
            check_request(request, api=api)
        except InputRejected as exc:
            logger.info("refused %s %r: %s", request.method, path, exc.code)
            return _refusal(request, exc, api=api)
        response = get_response(request)
        if api and response.status_code >= 400 and not _is_json(response):
            response = _as_json(response)
        return response

    return middleware


def check_request(request: HttpRequest, *, api: bool) -> None:
    """Raise :class:`InputRejected` for anything the rater views must never see."""
    _check_texts("address", [request.path_info])
    _check_texts("header", _header_values(request))
    _check_size(request)
    try:
        _check_texts("parameter", _pairs(request.GET.lists()))
        if request.method in ("GET", "HEAD", "OPTIONS"):
            return
        body = request.body
        if len(body) > MAX_BODY_BYTES:
            raise _too_large()
        if request.content_type not in FORM_TYPES:
            if api:  # JSON, or text a JSON reader may be handed (sendBeacon sends text/plain)
                check_json(body)
            return
        fields = list(_pairs(request.POST.lists()))
    except RequestDataTooBig:
        raise _too_large() from None
    except (SuspiciousOperation, BadRequest, MultiPartParserError, UnreadablePostError) as exc:
        raise InputRejected("bad_request", f"This request could not be read: {exc}") from None
    _check_texts("form field", fields)
    if api:  # a form field may carry JSON text (viewing)
        for value in fields:
            _check_json_text(value)


def check_json(body: bytes) -> None:
    """Refuse a JSON body the rater API must never parse or store (see
    :func:`_check_json_text`), and JSON text in its strings likewise (``viewing`` may be
    sent as JSON text inside JSON).

    Malformed JSON passes: the view answers it with the session's state.
    """
    try:
        text = body.decode(json.detect_encoding(body), "surrogatepass")  # as json.loads
    except (UnicodeDecodeError, LookupError):
        return
    for inner in _check_json_text(text):
        _check_json_text(inner)


def _check_json_text(text: str) -> list[str]:
    """Refuse JSON nested deeper than :data:`MAX_JSON_DEPTH`, holding unstorable text, or
    an integer no float can hold (``float()`` of it raises OverflowError, which forms and
    ``math.isfinite`` let through); returns its strings (none if it is not JSON)."""
    _check_depth(text)
    start = text.lstrip(" \t\n\r")[:1]
    if not start or start not in _JSON_STARTS:
        return []  # not JSON: json.loads would refuse it at its first character
    try:
        data = json.loads(text)
    except ValueError:
        return []
    leaves = list(_json_leaves(data))
    texts = [leaf for leaf in leaves if isinstance(leaf, str)]
    _check_texts("JSON text", texts)
    if any(isinstance(leaf, int) and abs(leaf) > sys.float_info.max for leaf in leaves):
        raise InputRejected("bad_number", "A number in this request is too large.")
    return texts


def json_depth(text: str) -> int:
    """How deeply ``[``/``{`` nest in ``text`` read as JSON (brackets in strings ignored).

    No recursion and no backtracking, whatever the text: the strings (an unterminated one
    runs to the end) are cut out by one regular expression in C, then only the brackets
    left are walked. ``tests/studies/test_hostile_input.py`` holds it to a plain
    character-by-character reading.
    """
    depth = deepest = 0
    for bracket in _BRACKETS.findall(_JSON_STRING.sub("", text)):
        if bracket in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


# A JSON string as a reader skips it: from a quote to the next unescaped quote, or to the
# end of the text (a trailing lone backslash included) when none closes it.
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*(?:"|\\?\Z)', re.DOTALL)
_BRACKETS = re.compile(r"[\[\]{}]")
# The first character (after JSON's whitespace) of any text json.loads accepts.
_JSON_STARTS = frozenset('{["-0123456789tfnNI')


def _check_depth(text: str) -> None:
    if "[" in text or "{" in text:
        depth = json_depth(text)
        if depth > MAX_JSON_DEPTH:
            message = f"JSON nested {depth} deep; at most {MAX_JSON_DEPTH} levels are accepted."
            raise InputRejected("too_deep", message)


def _check_texts(where: str, texts: Iterable[str]) -> None:
    for text in texts:
        found = UNSTORABLE.search(text)
        if found is not None:
            character = f"U+{ord(found.group()):04X}"
            raise InputRejected("bad_characters", f"A {where} holds the character {character}.")


def _check_size(request: HttpRequest) -> None:
    declared = request.META.get("CONTENT_LENGTH") or "0"
    try:
        size = int(declared)
    except ValueError:
        raise InputRejected(
            "bad_request", f"Content-Length {declared!r} is not a number."
        ) from None
    if size < 0:
        raise InputRejected("bad_request", f"Content-Length {declared!r} is negative.")
    if size > MAX_BODY_BYTES:
        raise _too_large()


def _too_large() -> InputRejected:
    message = f"This request is too large; at most {MAX_BODY_BYTES} bytes are accepted."
    return InputRejected("too_large", message, status=413)


def _header_values(request: HttpRequest) -> Iterator[str]:
    for name, value in request.META.items():
        if isinstance(value, str) and (name.startswith("HTTP_") or name.startswith("CONTENT_")):
            yield name
            yield value


def _pairs(lists: Iterable[tuple[str, list[str]]]) -> Iterator[str]:
    for key, values in lists:
        yield key
        yield from values


def _json_leaves(data: Any) -> Iterator[Any]:
    """Every key and scalar in parsed JSON (its depth is already bounded)."""
    if isinstance(data, dict):
        for key, value in data.items():
            yield key
            yield from _json_leaves(value)
    elif isinstance(data, list):
        for value in data:
            yield from _json_leaves(value)
    else:
        yield data


def _refusal(request: HttpRequest, exc: InputRejected, *, api: bool) -> HttpResponse:
    if api:
        body = {"ok": False, "code": exc.code, "message": exc.message}
        response: HttpResponse = JsonResponse(body, status=exc.status)
    else:
        response = render(request, "400.html", status=exc.status)
    response["Cache-Control"] = "no-store"
    return response


def _is_json(response: HttpResponse) -> bool:
    return str(response.get("Content-Type", "")).startswith("application/json")


def _as_json(response: HttpResponse) -> HttpResponse:
    """The same refusal (status, Allow header) as JSON, for the trial app."""
    status = response.status_code
    fallback = API_MESSAGES[500] if status >= 500 else API_MESSAGES[400]
    code, message = API_MESSAGES.get(status, fallback)
    converted = JsonResponse({"ok": False, "code": code, "message": message}, status=status)
    if response.has_header("Allow"):
        converted["Allow"] = response["Allow"]
    converted["Cache-Control"] = "no-store"
    return converted
