"""Hostile requests to every rater-facing endpoint never get a server error.

Hypothesis sends requests through Django's test client to the invitation link, the
session page (GET and POST with random form fields), ``state``, ``judge`` (random JSON:
wrong types, huge numbers, NaN/Infinity, deep nesting, huge strings, NUL, unknown fields;
form-encoded and multipart garbage; raw bytes under any content type) and image URLs,
for the session code of a session in each state, an unknown code and garbage. Every
answer must be below 500, and every 4xx of ``state``/``judge`` must be JSON.

Each request runs inside a savepoint that is rolled back, so every example meets the
same sessions (one per state) however earlier requests moved them on.

Two profiles: :func:`test_hostile_requests_never_get_a_server_error` (a few hundred
requests, in every test run) and the long one, marked ``slow`` and run only on request::

    PERCEPTLAB_FUZZ_REQUESTS=10000 .venv/bin/python -m pytest tests/load/test_fuzz.py -rP
    .venv/bin/python -m pytest tests/load/test_fuzz.py -m slow -rP    # 10,000 by default
"""

from __future__ import annotations

import json
import logging
import os
import traceback
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote, quote_from_bytes, urlencode

import pytest
import studykit
from django.db import transaction
from django.test import Client
from django.test.client import BOUNDARY, MULTIPART_CONTENT, encode_multipart
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from perceptlab.studies import sessions
from perceptlab.studies.models import Session, Stimulus

pytestmark = pytest.mark.django_db
T = TypeVar("T")

SHORT_REQUESTS = 300
LONG_REQUESTS = int(os.environ.get("PERCEPTLAB_FUZZ_REQUESTS") or 10_000)
LONG_SKIPPED = (
    "the 10,000-request fuzz runs with -m slow or PERCEPTLAB_FUZZ_REQUESTS=<count> "
    "(the short profile runs always)"
)
STATES = ("consent", "instructions", "rating", "completed", "screened_out", "declined")
CODES = (*STATES, "rating", "not_open", "unknown")  # rating twice: the most to probe
API = ("state", "judge")
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")

# -- the sessions every example meets ----------------------------------------------------


@dataclass(frozen=True)
class World:
    """A live study with one session in each state, and a draft study's session."""

    invites: dict[str, str]
    codes: dict[str, str]
    tokens: tuple[str, ...]  # those the rating session is shown first, then the others
    position: int


def build_world() -> World:
    study = studykit.make_study(
        "acr", images=2, practice_trials=1, gold_trials=1, completion_code="DONE"
    )
    draft = studykit.make_study(build=False)
    made = {state: Session.objects.create(study=study, state=state) for state in STATES[:2]}
    made["rating"] = studykit.rating_session(study)
    made["completed"] = studykit.rating_session(study)
    studykit.complete(made["completed"])
    made["screened_out"] = studykit.rating_session(study)
    sessions.screen_out(session=made["screened_out"], reason="screen too small: fuzz")
    made["declined"] = Session.objects.create(study=study, state=Session.State.DECLINED)
    made["not_open"] = Session.objects.create(study=draft, state=Session.State.RATING)
    for state in STATES:
        made[state].refresh_from_db()
        assert made[state].state == state, (state, made[state].state)
    served = Client().get(f"/r/{made['rating'].code}/state").json()
    shown = [
        url.rsplit("/", 1)[1]
        for t in (served["trial"], served["next"])
        if t
        for url in t["images"].values()
        if url
    ]
    others = Stimulus.objects.filter(study=study).exclude(token__in=shown)
    image = Client().get(f"/r/{made['rating'].code}/img/{shown[0]}")
    assert image.status_code == 200, (shown, image.status_code, image.content[:200])
    with transaction.atomic():
        answer = {"position": served["trial"]["position"], "key": str(uuid.uuid4()), "score": 5}
        judged = Client().post(f"/r/{made['rating'].code}/judge", {**answer, "view_ms": 4000})
        assert judged.status_code == 200, judged.content[:300]
        transaction.set_rollback(True)
    return World(
        invites={"live": str(study.invite), "draft": str(draft.invite)},
        codes={name: str(session.code) for name, session in made.items()},
        tokens=(*shown, *others.values_list("token", flat=True)),
        position=int(served["trial"]["position"]),
    )


# -- what the strategies draw ------------------------------------------------------------


@dataclass(frozen=True)
class Ref:
    """A world value, resolved when sent: a session's code, an invite, the ``index``-th
    stimulus token, the rating session's current ``position``."""

    name: str
    index: int = 0


@dataclass(frozen=True)
class Joined:
    """A path segment of several values joined by "." (a bundle's tokens), each a
    :class:`Ref` or text."""

    parts: tuple[str | Ref, ...]


@dataclass(frozen=True)
class JsonBody:
    value: Any  # JSON-able, but for Ref("position")


@dataclass(frozen=True)
class FormBody:
    fields: dict[str, Any]  # text values, or Ref("position")
    multipart: bool


Body = bytes | str | JsonBody | FormBody


@dataclass
class Hostile:
    """One request: ``segments`` of its path may be :class:`Ref`; ``api``: state or judge."""

    kind: str  # join, session, state, judge, image or images
    method: str
    segments: list[str | Ref | Joined]
    query: str = ""
    body: Body = b""
    content_type: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    csrf: bool = False
    api: bool = False


def weighted(*choices: tuple[int, st.SearchStrategy[T]]) -> st.SearchStrategy[T]:
    """One of the strategies, drawn in proportion to its weight (``st.one_of`` drops a
    strategy given twice, so repeating one does not weigh it)."""
    table = [strategy for weight, strategy in choices for _ in range(weight)]
    return st.sampled_from(table).flatmap(lambda strategy: strategy)


TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=30)  # the client encodes
SPECIAL = st.sampled_from(
    [
        "",
        "\x00",
        "a\x00b",
        "\x01\x1b\x7f\x9f",
        "NaN",
        "Infinity",
        "-Infinity",
        "nan",
        "1e309",
        "-0",
        "9" * 5000,
        "0x10",
        "١٢٣",
        " 5 ",
        "\u202e\ufeff\u200b",
        "😀" * 50,
        "../../etc/passwd",
        "<script>alert(1)</script>",
        "' OR 1=1 --",
        "%00",
        "\r\n\r\n",
        "null",
        "[]",
        "{}",
        "[" * 2000 + "]" * 2000,
        '{"a":' * 500 + "1" + "}" * 500,
    ]
)
HUGE = st.integers(300, 60_000).map(lambda n: "é" * n)
HOSTILE_TEXT = weighted((2, TEXT), (1, SPECIAL), (1, HUGE))
NUMBERISH = st.one_of(
    st.integers(),
    st.integers(min_value=10**20, max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    HOSTILE_TEXT,
)


def segment(names: tuple[str, ...]) -> st.SearchStrategy[str | Ref]:
    """A path segment: a world value by name, or percent-encoded garbage (never a '/')."""
    garbage = st.one_of(
        st.one_of(TEXT, SPECIAL).map(lambda s: quote(s, safe="")),
        st.binary(max_size=30).map(lambda b: quote_from_bytes(b, safe="")),
    ).filter(lambda s: "%2F" not in s)
    if not names:
        return garbage
    refs = st.sampled_from([Ref(n) for n in names])
    return weighted((3, refs), (1, garbage))


def query_string() -> st.SearchStrategy[str]:
    keys = st.one_of(
        st.sampled_from(["PROLIFIC_PID", "STUDY_ID", "SESSION_ID", "workerId", "hitId"]),
        st.sampled_from(["assignmentId", "turkSubmitTo"]),
        HOSTILE_TEXT,
    )
    values = st.one_of(HOSTILE_TEXT, st.just("ASSIGNMENT_ID_NOT_AVAILABLE"))
    pairs = st.lists(st.tuples(keys, values), max_size=25).map(urlencode)
    raw = st.lists(st.tuples(st.binary(max_size=20), st.binary(max_size=20)), max_size=10).map(
        lambda kv: "&".join(f"{quote_from_bytes(k)}={quote_from_bytes(v)}" for k, v in kv)
    )
    many = st.integers(0, 1_500).map(lambda n: "&".join(f"p{i}=v" for i in range(n)))
    broken = st.sampled_from(["&&&", "=", "a=%", "%zz=1", "a=b=c", ";;", "a=%ED%A0%80"])
    return weighted((1, st.just("")), (3, pairs), (1, raw), (1, many), (1, broken))


def headers() -> st.SearchStrategy[dict[str, str]]:
    agent = st.one_of(st.just("Mozilla/5.0 (fuzz)"), HOSTILE_TEXT)
    return st.fixed_dictionaries({}, optional={"User-Agent": agent, "Accept": HOSTILE_TEXT})


JSON_LEAF = st.one_of(
    st.none(), st.booleans(), NUMBERISH.filter(lambda v: not isinstance(v, str)), HOSTILE_TEXT
)
JSON_VALUE = st.recursive(
    JSON_LEAF,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)
JUDGE_FIELDS = ("position", "key", "score", "choice", "flips", "view_ms", "age_ms", "viewing")


def judgment() -> st.SearchStrategy[dict[str, Any]]:
    """A dict shaped like a judgment: real field names with any values, and extras."""
    plausible: dict[str, st.SearchStrategy[Any]] = {
        "position": st.one_of(st.just(Ref("position")), JSON_VALUE),
        "key": st.one_of(st.uuids().map(str), JSON_VALUE),
        "score": st.one_of(st.sampled_from([1, 3, 5, 5.5, 0, 6]), JSON_VALUE),
        "choice": st.one_of(st.sampled_from(["a", "b", "undecided"]), JSON_VALUE),
        "flips": JSON_VALUE,
        "view_ms": st.one_of(st.just(4000), JSON_VALUE),
        "age_ms": JSON_VALUE,
        "viewing": JSON_VALUE,
    }
    extras = st.dictionaries(HOSTILE_TEXT, JSON_VALUE, max_size=3)
    return st.tuples(st.fixed_dictionaries({}, optional=plausible), extras).map(
        lambda parts: {**parts[1], **parts[0]}
    )


JSON_TYPES = ["application/json", "application/json; charset=utf-16", "application/json; x=\x00"]
FORM = "application/x-www-form-urlencoded"
OTHER_TYPES = [
    "text/plain",
    "multipart/form-data",
    f"{FORM}; charset=latin-1",
    "application/json; charset=bogus",
    "",
    "garbage",
]


def judge_body() -> st.SearchStrategy[tuple[Body, str]]:
    as_json = st.tuples(
        weighted((2, judgment()), (1, JSON_VALUE)).map(JsonBody),
        st.sampled_from(JSON_TYPES[:1] * 4 + JSON_TYPES[1:]),
    )
    answers: list[dict[str, Any]] = [{"choice": "a"}, {"score": 5}, {"score": 3.5}]
    valid = st.builds(
        lambda answer, key, encoding: as_body(
            {"position": Ref("position"), "key": key, "view_ms": 4000, "flips": 3, **answer},
            encoding,
        ),
        st.sampled_from(answers),
        st.uuids().map(str),
        st.sampled_from(["json", FORM, MULTIPART_CONTENT]),
    )
    deep = st.integers(1, 9_000).map(lambda d: ("[" * d + "]" * d, "application/json"))
    escapes = st.sampled_from(['"\\u0000"', '"\\ud800"', '{"choice": "\\udfff"}', "NaN"]).map(
        lambda text: (f'{{"position": 0, "viewing": {text}, "x": {text}}}', "application/json")
    )
    huge = st.integers(16_000, 3_000_000).map(lambda n: (b"x" * n, "application/json"))
    forms = form_body(JUDGE_FIELDS)
    return weighted(
        (3, as_json), (2, valid), (1, deep), (1, escapes), (1, huge), (1, forms), (1, raw_body())
    )


def as_body(fields: dict[str, Any], encoding: str) -> tuple[Body, str]:
    """``fields`` as JSON ("json"), form-encoded (FORM) or multipart (MULTIPART_CONTENT)."""
    if encoding == "json":
        return JsonBody(fields), "application/json"
    return FormBody(fields, multipart=encoding == MULTIPART_CONTENT), encoding


def form_body(names: tuple[str, ...]) -> st.SearchStrategy[tuple[Body, str]]:
    """Form fields (real names and others, any text) form-encoded or multipart."""
    values = NUMBERISH.map(str)
    fields = st.dictionaries(st.one_of(st.sampled_from(names), HOSTILE_TEXT), values, max_size=8)
    encoded = fields.map(lambda f: (FormBody(f, multipart=False), FORM))
    multipart = fields.map(lambda f: (FormBody(f, multipart=True), MULTIPART_CONTENT))
    return st.one_of(encoded, multipart)


def raw_body() -> st.SearchStrategy[tuple[Body, str]]:
    return st.tuples(st.binary(max_size=300), st.sampled_from([*JSON_TYPES, FORM, *OTHER_TYPES]))


SCREEN_FIELDS = (
    "inner_width",
    "inner_height",
    "device_pixel_ratio",
    "screen_width",
    "screen_height",
    "touch_points",
    "pointer_fine",
    "zoom",
    "gave_up",
)
VALID_FORMS: st.SearchStrategy[tuple[Body, str]] = st.sampled_from(
    [
        (FormBody({"decision": "agree"}, multipart=True), MULTIPART_CONTENT),
        (FormBody({"decision": "decline"}, multipart=False), FORM),
        (
            FormBody(
                {"inner_width": "1920", "inner_height": "1080", "device_pixel_ratio": "1"},
                multipart=False,
            ),
            FORM,
        ),
        (
            FormBody(
                {
                    "inner_width": "300",
                    "inner_height": "200",
                    "device_pixel_ratio": "2",
                    "gave_up": "on",
                },
                multipart=False,
            ),
            FORM,
        ),
    ]
)


@st.composite
def hostile_request(draw: st.DrawFn) -> Hostile:
    kind = draw(st.sampled_from(["join", "session", "state", "judge", "image", "images"]))
    method = draw(st.sampled_from(METHODS)) if draw(st.integers(0, 9)) == 0 else ""
    request = Hostile(
        kind=kind,
        method="",
        segments=[],
        query=draw(query_string()) if kind == "join" or draw(st.booleans()) else "",
        headers=draw(headers()),
        csrf=draw(st.integers(0, 9)) == 0,
        api=kind in API,
    )
    if kind == "join":
        request.segments = ["study", draw(segment(("live", "live", "draft", "unknown"))), ""]
        request.method = method or "GET"
        return request
    images = kind in ("image", "images")
    code = draw(segment(("rating", "rating", *CODES) if images else CODES))
    request.segments = [
        "r",
        code,
        {"session": "", "state": "state", "judge": "judge"}.get(kind, ""),
    ]
    if kind == "image":
        token = st.integers(0, 9).map(lambda i: Ref("token", i))  # the first are shown
        request.segments = ["r", code, "img", draw(st.one_of(token, segment(())))]
    if kind == "images":
        token = st.integers(0, 9).map(lambda i: Ref("token", i))
        tokens = st.lists(weighted((4, token), (1, segment(()))), min_size=1, max_size=8)
        request.segments = ["r", code, "imgs", Joined(tuple(draw(tokens)))]
    request.method = method or {"session": "GET|POST", "judge": "POST"}.get(kind, "GET")
    if request.method == "GET|POST":
        request.method = draw(st.sampled_from(["GET", "POST"]))
    if request.method in ("GET", "HEAD", "OPTIONS") and draw(st.integers(0, 4)):
        return request
    if kind == "judge":
        request.body, request.content_type = draw(judge_body())
    else:
        names = ("decision", "csrfmiddlewaretoken", *SCREEN_FIELDS)
        forms = weighted((1, VALID_FORMS), (2, form_body(names)), (1, raw_body()))
        request.body, request.content_type = draw(forms)
    return request


# -- sending and checking ----------------------------------------------------------------


@dataclass
class Tally:
    requests: int = 0
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)

    def summary(self) -> str:
        server_errors = sum(n for (_, status), n in self.statuses.items() if status >= 500)
        kinds = sorted({kind for kind, _ in self.statuses})
        lines = [f"{self.requests} requests, {server_errors} 5xx"]
        for kind in kinds:
            counts = {s: n for (k, s), n in sorted(self.statuses.items()) if k == kind}
            lines.append(f"  {kind}: {sum(counts.values())} requests, statuses {counts}")
        return "\n".join(lines)


def resolve(request: Hostile, world: World) -> tuple[str, bytes | str]:
    """The request's URL and body, its :class:`Ref` values replaced by the world's."""

    def value(item: Any) -> Any:
        if isinstance(item, Joined):
            return ".".join(str(value(part)) for part in item.parts)
        if not isinstance(item, Ref):
            return item
        if item.name == "token":
            return world.tokens[item.index % len(world.tokens)]
        if item.name == "position":
            return world.position
        return {**world.invites, **world.codes}.get(item.name, str(uuid.uuid4()))

    path = "/" + "/".join(str(value(s)) for s in request.segments)
    url = f"{path}?{request.query}" if request.query else path
    body = request.body
    if isinstance(body, JsonBody):
        top = body.value
        if isinstance(top, dict):
            top = {key: value(item) for key, item in top.items()}
        return url, json.dumps(top)
    if isinstance(body, FormBody):
        fields = {key: str(value(item)) for key, item in body.fields.items()}
        return url, encode_multipart(BOUNDARY, fields) if body.multipart else urlencode(fields)
    return url, body


# Two clients for the whole run: a new Client loads the middleware again, and WhiteNoise
# then scans every static file (half a second a request).
CLIENTS = {
    csrf: Client(enforce_csrf_checks=csrf, raise_request_exception=False) for csrf in (False, True)
}


def send(request: Hostile, world: World, tally: Tally, caplog: pytest.LogCaptureFixture) -> None:
    url, body = resolve(request, world)
    client = CLIENTS[request.csrf]
    client.cookies.clear()  # every request comes from a new browser
    caplog.clear()
    with transaction.atomic():
        response = client.generic(
            request.method,
            url,
            body,
            content_type=request.content_type,
            headers=request.headers,
        )
        transaction.set_rollback(True)
    tally.requests += 1
    tally.statuses[request.kind, response.status_code] += 1
    where = f"{request.method} {url[:300]!r} {request.content_type!r} body {str(body)[:300]!r}"
    assert response.status_code < 500, f"{response.status_code} for {where}\n{_traceback(caplog)}"
    if request.api and response.status_code >= 400:
        assert response["Content-Type"] == "application/json", where
        if request.method != "HEAD":
            assert json.loads(response.content)["ok"] is False, where


def _traceback(caplog: pytest.LogCaptureFixture) -> str:
    for record in reversed(caplog.records):
        if record.exc_info:
            return "".join(traceback.format_exception(*record.exc_info))
    return "(no traceback logged)"


@pytest.fixture
def world(db: None, caplog: pytest.LogCaptureFixture) -> World:
    for noisy in ("django.request", "django.security", "perceptlab.studies.guard"):
        caplog.set_level(logging.ERROR, logger=noisy)  # 4xx by the thousand
    return build_world()


def fuzz(requests: int, world: World, caplog: pytest.LogCaptureFixture) -> Tally:
    tally = Tally()

    @settings(
        max_examples=requests,
        deadline=None,
        database=None,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
        ],
    )
    @given(request=hostile_request())
    def one(request: Hostile) -> None:
        send(request, world, tally, caplog)

    one()
    return tally


def test_hostile_requests_never_get_a_server_error(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    tally = fuzz(SHORT_REQUESTS, world, caplog)
    print(tally.summary())
    assert tally.requests >= SHORT_REQUESTS


@pytest.mark.slow
def test_ten_thousand_hostile_requests_never_get_a_server_error(
    world: World, caplog: pytest.LogCaptureFixture, request: pytest.FixtureRequest
) -> None:
    asked = "PERCEPTLAB_FUZZ_REQUESTS" in os.environ or "slow" in request.config.option.markexpr
    if not asked:
        pytest.skip(LONG_SKIPPED)
    tally = fuzz(LONG_REQUESTS, world, caplog)
    print(tally.summary())
    assert tally.requests >= LONG_REQUESTS
