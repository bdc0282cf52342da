"""Rater images (``/r/<code>/img/<token>``, several at once under ``/r/<code>/imgs/…``) and
the staff-only media view (``/media/…``)."""

from __future__ import annotations

import email.parser
import email.policy
import hashlib
import uuid
from pathlib import Path
from typing import Any

import pytest
import studykit
from django.contrib.auth.models import User
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.http import FileResponse
from django.test import Client
from django.urls import reverse

from perceptlab.studies.images import _stimulus_of
from perceptlab.studies.models import Session, Stimulus, Trial

pytestmark = pytest.mark.django_db


@pytest.fixture
def session() -> Session:
    """A 2AFC session with its schedule: candidates in the trials, the original beside them."""
    return served(studykit.rating_session(studykit.make_study("2afc", images=1)))


def served(session: Session) -> Session:
    """The session after the rater app asked for its state: its first trials are assigned."""
    assert Client().get(reverse("studies:state", args=[session.code])).status_code == 200
    return session


def image_url(session: Session, stimulus: Stimulus) -> str:
    return reverse("studies:stimulus", args=[session.code, stimulus.token])


def bundle_url(session: Session, *stimuli: Stimulus | str) -> str:
    tokens = [s if isinstance(s, str) else s.token for s in stimuli]
    return reverse("studies:stimuli", args=[session.code, ".".join(tokens)])


def parts_of(response: Any) -> list[tuple[str | None, str | None, str, bytes]]:
    """A multipart/form-data response's parts as (name, filename, type, bytes), parsed by
    the standard library's MIME parser (not by our writer's rules)."""
    head = f"Content-Type: {response['Content-Type']}\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + response.content)
    assert message.is_multipart() and not message.defects
    return [
        (
            part.get_param("name", header="content-disposition"),
            part.get_filename(),
            part.get_content_type(),
            part.get_payload(decode=True),
        )
        for part in message.iter_parts()
    ]


def unshown_copy(stimulus: Stimulus) -> Stimulus:
    """A gold stimulus with ``stimulus``'s PNG that no trial shows."""
    return Stimulus.objects.create(
        study=stimulus.study,
        study_image=stimulus.study_image,
        role=Stimulus.Role.GOLD,
        png=stimulus.png.name,
        png_sha256=stimulus.png_sha256,
    )


def shown(session: Session) -> list[Stimulus]:
    trial = Trial.objects.filter(session=session).select_related("item__a", "item__b").first()
    assert trial is not None and trial.item.b is not None
    return [trial.item.a, trial.item.b]


def body(response: Any) -> bytes:
    return b"".join(response.streaming_content)


def test_an_image_is_streamed_in_one_query_with_its_sha256_as_etag(
    client: Client, session: Session, django_assert_max_num_queries: Any
) -> None:
    stimulus = shown(session)[0]
    with django_assert_max_num_queries(1):
        response = client.get(image_url(session, stimulus))
    assert response.status_code == 200
    assert isinstance(response, FileResponse) and response.streaming
    data = body(response)
    assert data == default_storage.open(stimulus.png.name).read()
    assert response["ETag"] == f'"{hashlib.sha256(data).hexdigest()}"' == f'"{stimulus.png_sha256}"'
    assert response["Content-Type"] == "image/png"
    assert response["Content-Length"] == str(len(data))
    assert response["Cache-Control"] == "private, max-age=86400, immutable"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "no-referrer"
    for header in ("Content-Disposition", "Last-Modified", "Expires"):
        assert header not in response


def test_a_matching_if_none_match_gets_a_304_without_the_file(
    client: Client, session: Session, django_assert_max_num_queries: Any
) -> None:
    stimulus = shown(session)[0]
    etag = f'"{stimulus.png_sha256}"'
    for sent in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        with django_assert_max_num_queries(1):
            response = client.get(image_url(session, stimulus), headers={"If-None-Match": sent})
        assert response.status_code == 304, sent
        assert response.content == b""
        assert response["ETag"] == etag
        assert response["Cache-Control"] == "private, max-age=86400, immutable"
    other = client.get(image_url(session, stimulus), headers={"If-None-Match": '"other"'})
    assert other.status_code == 200


def test_the_original_beside_the_candidates_is_served_as_the_reference(
    client: Client, session: Session
) -> None:
    original = Stimulus.objects.get(
        study_image=shown(session)[0].study_image, role=Stimulus.Role.ORIGINAL
    )
    assert client.get(image_url(session, original)).status_code == 200


def test_images_no_trial_of_the_session_shows_are_404_in_one_query(
    client: Client, session: Session, django_assert_max_num_queries: Any
) -> None:
    stimulus = shown(session)[0]
    unshown = unshown_copy(stimulus)
    other = Session.objects.create(study=session.study)  # no trials yet
    for url in (
        image_url(session, unshown),
        image_url(other, stimulus),
        reverse("studies:stimulus", args=[uuid.uuid4(), stimulus.token]),
    ):
        with django_assert_max_num_queries(1):
            assert client.get(url).status_code == 404, url


def test_an_acr_original_is_no_reference_and_is_not_served(client: Client) -> None:
    acr = served(studykit.rating_session(studykit.make_study("acr", images=1)))
    original = Stimulus.objects.get(study=acr.study, role=Stimulus.Role.ORIGINAL)
    assert not Trial.objects.filter(session=acr, item__a=original).exists()
    assert client.get(image_url(acr, original)).status_code == 404


@pytest.mark.parametrize(
    "token",
    ["nope", "A" * 21, "A" * 23, "A" * 21 + "!", "A" * 21 + "é", "A" * 21 + "\x00", "A" * 500],
)
def test_a_malformed_token_is_404_without_a_query(
    client: Client, session: Session, token: str, django_assert_num_queries: Any
) -> None:
    with django_assert_num_queries(0):
        assert _stimulus_of(session.code, token) is None
    response = client.get(reverse("studies:stimulus", args=[session.code, token]))
    # the input guard refuses a NUL in the path (400) before the view sees it
    assert response.status_code == (400 if "\x00" in token else 404)


def test_a_trials_images_come_in_one_response_in_one_query(
    client: Client, session: Session, django_assert_max_num_queries: Any
) -> None:
    """The bundle holds each PNG byte for byte, named by its token, in the order asked; its
    ETag is the SHA-256 of the parts' SHA-256s, and the same bundle is the same bytes."""
    a, b = shown(session)
    original = Stimulus.objects.get(study_image=a.study_image, role=Stimulus.Role.ORIGINAL)
    asked = [b, original, a]
    with django_assert_max_num_queries(1):
        response = client.get(bundle_url(session, *asked))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("multipart/form-data; boundary=")
    assert response["Content-Length"] == str(len(response.content))
    assert response["Cache-Control"] == "private, max-age=86400, immutable"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "no-referrer"
    for header in ("Content-Disposition", "Last-Modified", "Expires"):
        assert header not in response
    expected = [
        (s.token, f"{s.token}.png", "image/png", default_storage.open(s.png.name).read())
        for s in asked
    ]
    assert parts_of(response) == expected
    digest = hashlib.sha256("\n".join(s.png_sha256 for s in asked).encode()).hexdigest()
    assert response["ETag"] == f'"{digest}"'
    assert client.get(bundle_url(session, *asked)).content == response.content
    with django_assert_max_num_queries(1):
        again = client.get(bundle_url(session, *asked), headers={"If-None-Match": f'"{digest}"'})
    assert again.status_code == 304 and again.content == b""
    assert again["ETag"] == f'"{digest}"'
    other_order = client.get(bundle_url(session, a, original, b))
    assert [p[0] for p in parts_of(other_order)] == [a.token, original.token, b.token]
    assert other_order["ETag"] != response["ETag"]


def test_a_bundle_with_an_image_the_session_may_not_see_is_404(
    client: Client, session: Session, django_assert_num_queries: Any
) -> None:
    a, b = shown(session)
    unshown = unshown_copy(a)
    other = Session.objects.create(study=session.study)
    with django_assert_num_queries(1):
        assert client.get(bundle_url(session, a, unshown)).status_code == 404
    assert client.get(bundle_url(other, a, b)).status_code == 404
    for malformed in ([a, a], [a, "nope"], [a, "A" * 21 + "!"], [a, b] * 3 + [a], [a, ""]):
        with django_assert_num_queries(0):
            assert client.get(bundle_url(session, *malformed)).status_code == 404, malformed
    assert client.get(bundle_url(session, a, b).replace(".", "..")).status_code == 404


def test_the_multipart_boundary_never_occurs_in_a_part() -> None:
    from perceptlab.studies.images import form_data

    body, boundary = form_data([("x", b"abc")], seed="s")
    clash = f"--{boundary}".encode()
    body2, boundary2 = form_data([("x", b"ab" + clash + b"c"), ("y", b"")], seed="s")
    assert boundary2 != boundary and f"--{boundary2}".encode() not in b"ab" + clash + b"c"
    assert body2.count(f"--{boundary2}".encode()) == 3  # two parts and the close
    assert body.endswith(f"--{boundary}--\r\n".encode())


@pytest.mark.parametrize("mode", ["x-accel-redirect", "x-sendfile"])
def test_the_front_server_sends_the_file_when_configured(
    client: Client, session: Session, settings: Any, mode: str
) -> None:
    settings.PERCEPTLAB_SENDFILE = mode
    settings.PERCEPTLAB_SENDFILE_PREFIX = "/_protected/"
    stimulus = shown(session)[0]
    response = client.get(image_url(session, stimulus))
    assert response.status_code == 200
    assert response.content == b""
    assert response["Content-Type"] == "image/png"
    assert response["ETag"] == f'"{stimulus.png_sha256}"'
    if mode == "x-accel-redirect":
        assert response["X-Accel-Redirect"] == f"/_protected/{stimulus.png.name}"
    else:
        assert response["X-Sendfile"] == str(Path(settings.MEDIA_ROOT) / stimulus.png.name)
    assert "Content-Disposition" not in response


def client_etag(path: str) -> str:
    response = Client().get(path)
    assert response.status_code == 200
    return str(response["ETag"])


def _without_fast_path(settings: Any) -> None:
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if not m.endswith(".rater_images")]


@pytest.mark.parametrize("mode", ["", "x-accel-redirect"])
def test_the_image_middleware_answers_as_the_view_behind_the_whole_stack(
    session: Session, settings: Any, mode: str
) -> None:
    """Every request for a rater image gets the same status, headers and bytes whether the
    middleware answers it or it goes through the whole stack to the view; the middleware
    answers the images a session may see (the view is never reached) and leaves the rest
    (404s, other methods, what the guard refuses, an unknown host) to the stack."""
    from unittest import mock

    from perceptlab.studies import images

    settings.PERCEPTLAB_SENDFILE = mode
    stimulus, other_side = shown(session)
    original = Stimulus.objects.get(study_image=stimulus.study_image, role=Stimulus.Role.ORIGINAL)
    url = image_url(session, stimulus)
    etag = f'"{stimulus.png_sha256}"'
    bundle = bundle_url(session, stimulus, other_side)
    bundle_etag = client_etag(bundle)
    requests: list[tuple[str, str, dict[str, str], int, int]] = [
        # (method, path, headers, status, image_response calls with the middleware)
        ("get", url, {}, 200, 1),
        ("head", url, {}, 200, 1),
        ("get", image_url(session, other_side), {}, 200, 1),
        ("get", image_url(session, original), {}, 200, 1),
        ("get", url, {"If-None-Match": etag}, 304, 1),
        ("get", url, {"If-None-Match": f'W/{etag}, "x"'}, 304, 1),
        ("get", url, {"If-None-Match": '"other"'}, 200, 1),
        ("get", reverse("studies:stimulus", args=[uuid.uuid4(), stimulus.token]), {}, 404, 1),
        ("get", reverse("studies:stimulus", args=[session.code, "A" * 22]), {}, 404, 1),
        ("get", reverse("studies:stimulus", args=[session.code, "nope"]), {}, 404, 1),
        ("get", url.replace(str(session.code), str(session.code).upper()), {}, 404, 0),
        ("get", url + "/", {}, 404, 0),
        ("post", url, {}, 405, 0),
        ("get", url, {"X-Odd": "a\x00b"}, 400, 0),
        ("get", url + "?q=%00", {}, 400, 0),
        ("get", url, {"Host": "evil.example"}, 400, 0),
        ("get", bundle_url(session, stimulus, other_side, original), {}, 200, 1),
        ("head", bundle_url(session, other_side, stimulus), {}, 200, 1),
        ("get", bundle, {"If-None-Match": bundle_etag}, 304, 1),
        ("get", bundle_url(session, stimulus, "A" * 22), {}, 404, 1),
        ("get", bundle_url(session, stimulus, stimulus), {}, 404, 1),
        ("get", bundle + "/", {}, 404, 0),
        ("post", bundle, {}, 405, 0),
        ("get", bundle + "?q=%00", {}, 400, 0),
    ]

    def answer(client: Client, method: str, path: str, headers: dict[str, str], status: int) -> Any:
        response = getattr(client, method)(path, headers=headers)
        assert response.status_code == status, (method, path, headers)
        content = body(response) if response.streaming else response.content
        return response.status_code, dict(response.headers), content

    fast = []
    with (
        mock.patch.object(images, "image_response", wraps=images.image_response) as one,
        mock.patch.object(images, "bundle_response", wraps=images.bundle_response) as several,
    ):
        for method, path, headers, status, calls in requests:
            before = one.call_count + several.call_count
            fast.append(answer(Client(), method, path, headers, status))
            after = one.call_count + several.call_count
            assert after - before == calls, (method, path, headers)
    _without_fast_path(settings)
    slow = [answer(Client(), *request[:4]) for request in requests]
    assert len(fast) == len(slow) == len(requests)
    for request, ours, theirs in zip(requests, fast, slow, strict=True):
        assert ours == theirs, request


# -- /media/: staff only ------------------------------------------------------------------------


@pytest.fixture
def stored_png(settings: Any) -> str:
    settings.DEBUG = False  # production: no static() media route to fall back on
    return default_storage.save(
        "stimuli/ab/preview.png", ContentFile(b"\x89PNG\r\n\x1a\n" + b"x" * 64)
    )


def test_media_are_streamed_to_staff(admin_client: Client, stored_png: str) -> None:
    response = admin_client.get(f"/media/{stored_png}")
    assert response.status_code == 200
    assert isinstance(response, FileResponse)
    assert body(response).startswith(b"\x89PNG")
    assert response["Content-Type"] == "image/png"
    assert response["Cache-Control"] == "private, max-age=3600"
    assert "Content-Disposition" not in response


def test_media_are_404_to_anonymous_visitors_and_raters(
    client: Client, stored_png: str, django_user_model: type[User]
) -> None:
    assert client.get(f"/media/{stored_png}").status_code == 404
    rater = django_user_model.objects.create_user("someone", password="x" * 12)
    client.force_login(rater)
    assert client.get(f"/media/{stored_png}").status_code == 404


def test_media_refuse_odd_names_and_download_what_is_not_an_image(
    admin_client: Client, stored_png: str
) -> None:
    for name in ("../settings.py", "stimuli/../../x", "stimuli//x.png", "missing.png"):
        assert admin_client.get(f"/media/{name}").status_code == 404, name
    bitstream = default_storage.save("bitstreams/x.bin", ContentFile(b"<html>"))
    response = admin_client.get(f"/media/{bitstream}")
    assert response["Content-Type"] == "application/octet-stream"
    assert response["Content-Disposition"] == "attachment"
    assert response["X-Content-Type-Options"] == "nosniff"


def test_the_image_url_prefix_equals_reverse_for_any_code_and_script_prefix() -> None:
    from django.urls import get_script_prefix, set_script_prefix

    from perceptlab.studies.views import images_prefix

    before = get_script_prefix()
    try:
        for prefix in ("/", "/perceptlab/", "/a/b/"):
            set_script_prefix(prefix)
            for code in (uuid.uuid4(), uuid.UUID(int=0), uuid.UUID(int=2**128 - 1)):
                expected = reverse("studies:stimulus", args=[code, "-"]).removesuffix("-")
                assert images_prefix(code) == expected
                assert expected.startswith(prefix)
    finally:
        set_script_prefix(before)
