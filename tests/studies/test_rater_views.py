from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from django.urls import resolve, reverse

from perceptlab.studies.models import Judgment, Session, Stimulus, Study, Trial

pytestmark = pytest.mark.django_db

MakeStudy = Callable[..., Study]  # the make_study fixture of tests/studies/conftest.py

HEADERS = {"User-Agent": "Mozilla/5.0 (test)"}
LARGE_SCREEN = {"inner_width": 1920, "inner_height": 1080, "device_pixel_ratio": 1}


def join(client: Client, study: Study, **params: str) -> Any:
    return client.get(reverse("studies:join", args=[study.invite]), params, headers=HEADERS)


def session_from(response: Any) -> Session:
    assert response.status_code == 302, response.content[:300]
    match = resolve(response.url)
    assert match.view_name == "studies:session"
    return Session.objects.get(code=match.kwargs["code"])


def page(session: Session) -> str:
    return reverse("studies:session", args=[session.code])


def start_rating(client: Client, study: Study, **params: str) -> Session:
    """Join, consent and pass the screen check: the session is rating."""
    session = session_from(join(client, study, **params))
    client.post(page(session), {"decision": "agree"})
    client.post(page(session), LARGE_SCREEN)
    session.refresh_from_db()
    assert session.state == Session.State.RATING
    return session


def state(client: Client, session: Session) -> dict[str, Any]:
    response = client.get(reverse("studies:state", args=[session.code]))
    assert response.status_code == 200
    return dict(response.json())


def judge(client: Client, session: Session, **fields: Any) -> Any:
    return client.post(reverse("studies:judge", args=[session.code]), fields)


def answer(client: Client, session: Session, trial: dict[str, Any], **fields: Any) -> Any:
    fields = {"position": trial["position"], "key": str(uuid.uuid4()), "view_ms": 4000, **fields}
    return judge(client, session, **fields)


# -- the invitation link ------------------------------------------------------------------


def test_the_invitation_link_creates_a_session_and_redirects_to_it(
    client: Client, make_study: MakeStudy
) -> None:
    study = make_study()
    session = session_from(join(client, study))
    assert session.study == study
    assert session.state == Session.State.CONSENT
    assert session.platform == Session.Platform.DIRECT
    assert session.user_agent == "Mozilla/5.0 (test)"
    assert Session.objects.count() == 1


def test_reloading_the_link_in_the_same_browser_resumes_the_session(
    client: Client, make_study: MakeStudy
) -> None:
    study = make_study()
    first = session_from(join(client, study))
    again = session_from(join(client, study))
    assert again == first
    assert session_from(join(Client(), study)) != first  # another browser: a new rater
    assert Session.objects.count() == 2


def test_prolific_ids_are_kept_and_the_same_participant_resumes_the_same_session(
    client: Client, make_study: MakeStudy
) -> None:
    study = make_study()
    params = {"PROLIFIC_PID": "p-123", "STUDY_ID": "s-9", "SESSION_ID": "x-1"}
    session = session_from(join(client, study, **params))
    assert session.platform == Session.Platform.PROLIFIC
    assert session.participant_id == "p-123"
    assert session.external == params
    on_another_device = session_from(join(Client(), study, **params))
    assert on_another_device == session
    assert Session.objects.count() == 1


def test_a_participant_who_finished_sees_the_final_page_again_instead_of_starting_over(
    client: Client, make_study: MakeStudy
) -> None:
    study = make_study()
    session = session_from(join(client, study, PROLIFIC_PID="p-1"))
    client.post(page(session), {"decision": "decline"})
    response = Client().get(reverse("studies:join", args=[study.invite]), {"PROLIFIC_PID": "p-1"})
    assert session_from(response) == session
    assert "chose not to take part" in Client().get(response.url).content.decode()


def test_mturk_workers_are_identified_by_their_worker_id(
    client: Client, make_study: MakeStudy
) -> None:
    study = make_study()
    params = {"workerId": "W1", "assignmentId": "A1", "hitId": "H1"}
    session = session_from(join(client, study, **params))
    assert (session.platform, session.participant_id) == (Session.Platform.MTURK, "W1")
    assert session.external == params


def test_an_mturk_preview_shows_a_notice_and_creates_no_session(
    client: Client, make_study: MakeStudy
) -> None:
    study = make_study()
    response = join(client, study, assignmentId="ASSIGNMENT_ID_NOT_AVAILABLE", hitId="H1")
    assert response.status_code == 200
    assert 'data-testid="mturk-preview"' in response.content.decode()
    assert not Session.objects.exists()


@pytest.mark.parametrize("state", [Study.State.DRAFT, Study.State.PAUSED, Study.State.CLOSED])
def test_a_study_that_is_not_live_creates_no_session(
    client: Client, make_study: MakeStudy, state: str
) -> None:
    study = make_study(state=state)
    response = join(client, study, PROLIFIC_PID="p-1")
    assert response.status_code == 200
    assert 'data-testid="not-open"' in response.content.decode()
    assert not Session.objects.exists()


# -- consent and instructions -------------------------------------------------------------


def test_the_consent_text_is_escaped_and_split_into_paragraphs(
    client: Client, make_study: MakeStudy
) -> None:
    study = make_study(consent_text="First <b>part</b>.\n\nSecond part.")
    session = session_from(join(client, study))
    html = client.get(page(session)).content.decode()
    assert "<p>First &lt;b&gt;part&lt;/b&gt;.</p>" in html
    assert "<p>Second part.</p>" in html
    assert "I agree" in html and "I do not agree" in html


def test_agreeing_to_the_consent_leads_to_the_instructions(
    client: Client, make_study: MakeStudy
) -> None:
    study = make_study(method="2afc", instructions_text="Look at the sky.")
    session = session_from(join(client, study))
    response = client.post(page(session), {"decision": "agree"})
    assert response.status_code == 302
    session.refresh_from_db()
    assert session.state == Session.State.INSTRUCTIONS
    assert session.consented is not None
    html = client.get(page(session)).content.decode()
    assert "Look at the sky." in html
    assert "closer to the original" in html
    assert 'name="device_pixel_ratio"' in html


def test_declining_the_consent_ends_the_session_politely(
    client: Client, make_study: MakeStudy
) -> None:
    study = make_study()
    session = session_from(join(client, study))
    response = client.post(page(session), {"decision": "decline"}, follow=True)
    session.refresh_from_db()
    assert session.state == Session.State.DECLINED
    assert session.finished is not None
    assert 'data-testid="declined"' in response.content.decode()


def test_a_window_too_small_asks_to_enlarge_it_and_screens_out_only_who_gives_up(
    client: Client, make_study: MakeStudy
) -> None:
    study = make_study(method="2afc", crop_width=64, screenout_url="https://example.org/out")
    session = session_from(join(client, study))
    client.post(page(session), {"decision": "agree"})
    small = {"inner_width": 120, "inner_height": 800, "device_pixel_ratio": 1}
    again = client.post(page(session), small)
    session.refresh_from_db()
    assert session.state == Session.State.INSTRUCTIONS  # told what to do, not dismissed
    assert 'data-testid="screen-error"' in again.content.decode()
    assert "144×" in again.content.decode()
    response = client.post(page(session), {**small, "gave_up": "on"}, follow=True)
    session.refresh_from_db()
    assert session.state == Session.State.SCREENED_OUT
    assert session.screened_reason.startswith("screen too small")
    assert "144×" in session.screened_reason  # two 64-pixel panes and a 16-pixel gap
    html = response.content.decode()
    assert "OUT456" in html
    assert "https://example.org/out" in html
    assert "window is too small to show the study" in html
    assert not session.trials.exists()


def test_the_screen_check_counts_device_pixels(client: Client, make_study: MakeStudy) -> None:
    study = make_study(method="2afc")
    session = session_from(join(client, study))
    client.post(page(session), {"decision": "agree"})
    retina = {"inner_width": 100, "inner_height": 300, "device_pixel_ratio": 2}
    client.post(page(session), retina)  # 200×600 device pixels: enough for 144×(64+320)
    session.refresh_from_db()
    assert session.state == Session.State.RATING
    assert session.screen["device_width"] == 200


def test_a_screen_check_without_javascript_asks_again(
    client: Client, make_study: MakeStudy
) -> None:
    study = make_study()
    session = session_from(join(client, study))
    client.post(page(session), {"decision": "agree"})
    response = client.post(page(session), {})
    assert response.status_code == 200
    assert 'data-testid="screen-error"' in response.content.decode()
    session.refresh_from_db()
    assert session.state == Session.State.INSTRUCTIONS


def test_the_rating_page_embeds_the_trial_app_configuration(
    client: Client, make_study: MakeStudy
) -> None:
    study = make_study(scale="11")
    session = start_rating(client, study)
    response = client.get(page(session))
    html = response.content.decode()
    config_json = html.split('id="rater-config" type="application/json">')[1].split("</script>")[0]
    config = json.loads(config_json)
    assert config["method"] == "acr"
    assert config["crop"] == {"width": 64, "height": 64}
    assert [p["key"] for p in config["points"]] == [*"0123456789", "t"]
    assert config["urls"]["judge"] == reverse("studies:judge", args=[session.code])
    assert config["initial"]["trial"]["position"] == 0
    assert 'data-testid="score-10"' in html
    assert "studies/app.js" in html


def test_session_pages_are_never_cached_so_back_never_shows_an_answered_trial(
    client: Client, make_study: MakeStudy
) -> None:
    study = make_study()
    session = session_from(join(client, study))
    assert client.get(page(session))["Cache-Control"] == "no-store"  # consent
    client.post(page(session), {"decision": "agree"})
    assert client.get(page(session))["Cache-Control"] == "no-store"  # instructions
    client.post(page(session), LARGE_SCREEN)
    assert client.get(page(session))["Cache-Control"] == "no-store"  # rating


PHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) Mobile/15E148 Safari/604.1"


def test_a_phone_is_refused_by_default_with_a_reason_the_rater_reads(
    client: Client, make_study: MakeStudy
) -> None:
    study = make_study(screenout_code="OUT456")
    url = reverse("studies:join", args=[study.invite])
    session = session_from(client.get(url, headers={"User-Agent": PHONE}))
    client.post(page(session), {"decision": "agree"})
    phone = {"inner_width": 390, "inner_height": 700, "device_pixel_ratio": 3}
    response = client.post(page(session), {**phone, "touch_points": 5}, follow=True)
    session.refresh_from_db()
    assert session.state == Session.State.SCREENED_OUT
    assert session.screened_reason.startswith("device not admitted")
    assert session.viewing["device_class"] == "phone" and session.viewing["dpr"] == 3
    assert "desktop or laptop" in response.content.decode()
    assert "window is too small" not in response.content.decode()  # not the window's fault


def test_a_study_that_admits_phones_lets_a_large_enough_phone_in(
    client: Client, make_study: MakeStudy
) -> None:
    study = make_study(allowed_devices=["desktop", "laptop", "phone"], crop_width=64)
    url = reverse("studies:join", args=[study.invite])
    session = session_from(client.get(url, headers={"User-Agent": PHONE}))
    client.post(page(session), {"decision": "agree"})
    phone = {"inner_width": 390, "inner_height": 700, "device_pixel_ratio": 3}
    client.post(page(session), {**phone, "touch_points": 5, "screen_width": 390})
    session.refresh_from_db()
    assert session.state == Session.State.RATING
    assert session.viewing["device_class"] == "phone"
    assert session.viewing["checks"][-1]["device_width"] == 1170


@pytest.mark.parametrize(
    ("fields", "flips"),
    [
        ({"method": "2afc"}, 3),
        ({"method": "dcr", "dcr_layout": "sequential"}, 3),
        ({"method": "dcr", "dcr_layout": "sequential", "min_flips": 0}, 1),  # see the test
        ({"method": "dcr"}, 0),
        ({"method": "acr"}, 0),
    ],
)
def test_the_app_is_told_the_flips_needed_only_where_there_is_something_to_flip(
    client: Client, make_study: MakeStudy, fields: dict[str, str], flips: int
) -> None:
    values = {"min_flips": 3, **fields}
    session = start_rating(client, make_study(min_view_seconds=2.5, **values))
    html = client.get(page(session)).content.decode()
    config_json = html.split('id="rater-config" type="application/json">')[1].split("</script>")[0]
    config = json.loads(config_json)
    assert config["minFlips"] == flips and config["minViewSeconds"] == 2.5


# -- the state and judge API ----------------------------------------------------------------


@pytest.mark.parametrize("method", ["acr", "dcr", "2afc"])
def test_the_state_reveals_no_codec_bitrate_role_or_trial_kind(
    client: Client, make_study: MakeStudy, method: str
) -> None:
    study = make_study(method=method)
    session = start_rating(client, study)
    payload = state(client, session)
    text = json.dumps(payload).lower()
    for word in ("jpeg", "webp", "bpp", "gold", "repeat", "original", "condition", "kind", "test"):
        assert word not in text, word
    assert set(payload) == {"state", "progress", "trial", "next", "redirect"}
    assert payload["trial"]["practice"] is True
    assert payload["redirect"] is None


def test_the_server_clock_starts_once_when_a_trial_is_first_sent_even_as_the_next(
    client: Client, make_study: MakeStudy
) -> None:
    session = start_rating(client, make_study())
    state(client, session)
    current, following = Trial.objects.filter(session=session).order_by("position")[:2]
    # The browser may show the preloaded next trial the moment the rater answers, so
    # its clock starts now too (24 of 29 too_fast flags were false when it started late).
    assert current.shown is not None and following.shown is not None
    first = {current.pk: current.shown, following.pk: following.shown}
    state(client, session)
    for trial in Trial.objects.filter(pk__in=first):
        assert trial.shown == first[trial.pk]
    assert Trial.objects.filter(session=session).count() == 2  # nothing else sent yet


def test_2afc_trials_show_the_original_and_two_versions(
    client: Client, make_study: MakeStudy
) -> None:
    session = start_rating(client, make_study(method="2afc"))
    images = state(client, session)["trial"]["images"]
    assert images["reference"] and images["a"] and images["b"]
    for url in images.values():
        assert client.get(url).status_code == 200


def test_judging_stores_the_answer_and_moves_to_the_next_trial(
    client: Client, make_study: MakeStudy
) -> None:
    session = start_rating(client, make_study())
    trial = state(client, session)["trial"]
    key = str(uuid.uuid4())
    body = {"position": trial["position"], "key": key, "score": 5, "flips": 0, "view_ms": 1234}
    response = client.post(
        reverse("studies:judge", args=[session.code]),
        json.dumps(body),
        content_type="application/json",
    )
    assert response.status_code == 200
    data = response.json()
    assert data["ok"] is True and data["duplicate"] is False
    assert data["trial"]["position"] == trial["position"] + 1
    assert data["progress"]["answered"] == 1
    judgment = Judgment.objects.get()
    assert (str(judgment.key), judgment.score, judgment.view_ms) == (key, 5.0, 1234)


def test_the_same_key_sent_twice_is_stored_once_and_reported_as_a_duplicate(
    client: Client, make_study: MakeStudy
) -> None:
    session = start_rating(client, make_study())
    trial = state(client, session)["trial"]
    key = str(uuid.uuid4())
    first = answer(client, session, trial, key=key, score=4)
    again = answer(client, session, trial, key=key, score=4)
    assert first.status_code == again.status_code == 200
    assert again.json()["duplicate"] is True
    assert Judgment.objects.count() == 1


def test_another_key_for_an_answered_trial_is_a_conflict_and_stores_nothing(
    client: Client, make_study: MakeStudy
) -> None:
    session = start_rating(client, make_study())
    trial = state(client, session)["trial"]
    answer(client, session, trial, score=4)
    response = answer(client, session, trial, score=2)
    assert response.status_code == 409
    data = response.json()
    assert (data["ok"], data["code"]) == (False, "conflict")
    assert data["trial"]["position"] == trial["position"] + 1  # the client can resync
    assert list(Judgment.objects.values_list("score", flat=True)) == [4.0]


def test_a_score_outside_the_scale_is_refused_and_stores_nothing(
    client: Client, make_study: MakeStudy
) -> None:
    session = start_rating(client, make_study())
    trial = state(client, session)["trial"]
    response = answer(client, session, trial, score=7)
    assert response.status_code == 400
    assert response.json()["code"] == "bad_score"
    assert not Judgment.objects.exists()


def test_a_malformed_answer_is_refused_with_messages_and_stores_nothing(
    client: Client, make_study: MakeStudy
) -> None:
    session = start_rating(client, make_study())
    trial = state(client, session)["trial"]
    response = answer(client, session, trial, key="not-a-uuid", score="high", flips=-1)
    assert response.status_code == 400
    data = response.json()
    assert data["code"] == "invalid"
    assert set(data["errors"]) == {"key", "score", "flips"}
    assert data["trial"]["position"] == trial["position"]
    assert not Judgment.objects.exists()


def test_an_answer_for_a_later_trial_is_out_of_order(client: Client, make_study: MakeStudy) -> None:
    session = start_rating(client, make_study())
    following = state(client, session)["next"]
    response = answer(client, session, following, score=3)
    assert response.status_code == 409
    assert response.json()["code"] == "out_of_order"


def test_an_unexpected_failure_is_a_friendly_json_error(
    client: Client, make_study: MakeStudy, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    session = start_rating(client, make_study())
    trial = state(client, session)["trial"]

    def broken(**kwargs: Any) -> None:
        raise RuntimeError("database on fire")

    monkeypatch.setattr("perceptlab.studies.views.record", broken)
    response = answer(client, session, trial, score=3)
    assert response.status_code == 500
    assert "fire" not in response.content.decode()
    assert response.json()["code"] == "server_error"
    assert "database on fire" in caplog.text


def test_an_answer_without_the_csrf_token_is_refused(client: Client, make_study: MakeStudy) -> None:
    session = start_rating(client, make_study())
    trial = state(client, session)["trial"]
    strict = Client(enforce_csrf_checks=True)
    fields = {"position": trial["position"], "key": str(uuid.uuid4()), "score": 3}
    response = strict.post(reverse("studies:judge", args=[session.code]), fields)
    assert response.status_code == 403
    assert "This page has expired" in response.content.decode()  # templates/403_csrf.html
    assert not Judgment.objects.exists()
    strict.get(page(session))  # the rating page sets the csrftoken cookie queue.js sends back
    token = strict.cookies["csrftoken"].value
    response = strict.post(
        reverse("studies:judge", args=[session.code]), fields, HTTP_X_CSRFTOKEN=token
    )
    assert response.status_code == 200
    assert Judgment.objects.count() == 1


def test_practice_on_a_gold_pair_gives_feedback(client: Client, make_study: MakeStudy) -> None:
    session = start_rating(client, make_study(method="2afc"))
    trial = state(client, session)["trial"]
    assert trial["practice"] is True
    data = answer(client, session, trial, choice="a", flips=3).json()
    assert "identical to the original" in data["feedback"]


def test_answering_every_trial_leads_to_the_completion_page_with_the_code(
    client: Client, make_study: MakeStudy
) -> None:
    study = make_study(completion_url="https://app.prolific.com/submissions/complete?cc=DONE123")
    session = start_rating(client, study)
    payload = state(client, session)
    answered = 0
    while payload["trial"] is not None:
        payload = answer(client, session, payload["trial"], score=5).json()
        answered += 1
    assert payload["state"] == Session.State.COMPLETED
    assert payload["progress"] == {"answered": answered, "total": answered}
    assert payload["redirect"] == page(session)
    html = client.get(payload["redirect"]).content.decode()
    assert "DONE123" in html
    assert 'http-equiv="refresh"' in html
    assert "https://app.prolific.com/submissions/complete?cc=DONE123" in html


def test_a_closed_study_still_shows_a_finished_rater_their_code(
    client: Client, make_study: MakeStudy
) -> None:
    study = make_study()
    session = start_rating(client, study)
    Session.objects.filter(pk=session.pk).update(state=Session.State.COMPLETED)
    Study.objects.filter(pk=study.pk).update(state=Study.State.CLOSED)
    assert "DONE123" in client.get(page(session)).content.decode()


def test_a_paused_study_asks_raters_to_come_back_and_serves_no_trial(
    client: Client, make_study: MakeStudy
) -> None:
    study = make_study()
    session = start_rating(client, study)
    Study.objects.filter(pk=study.pk).update(state=Study.State.PAUSED)
    assert 'data-testid="paused"' in client.get(page(session)).content.decode()
    payload = state(client, session)
    assert payload["trial"] is None
    assert payload["redirect"] == page(session)


# -- images and error pages -----------------------------------------------------------------


def test_images_are_served_as_png_without_a_file_name_or_dates(
    client: Client, make_study: MakeStudy
) -> None:
    session = start_rating(client, make_study(method="dcr"))
    images = state(client, session)["trial"]["images"]
    response = client.get(images["a"])
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    content = b"".join(response.streaming_content)
    assert content.startswith(b"\x89PNG")
    assert response["Cache-Control"] == "private, max-age=86400, immutable"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "no-referrer"
    for header in ("Content-Disposition", "Last-Modified"):
        assert header not in response
    # the ETag says nothing the bytes do not: their own SHA-256
    assert response["ETag"] == f'"{hashlib.sha256(content).hexdigest()}"'
    assert client.get(images["reference"]).status_code == 200


def test_a_session_cannot_read_an_image_outside_its_trials(
    client: Client, make_study: MakeStudy
) -> None:
    study = make_study()
    mine = start_rating(client, study)
    theirs = start_rating(Client(), study)
    state(client, mine)
    state(Client(), theirs)
    shown = set(Trial.objects.filter(session=mine).values_list("item__a__token", flat=True))
    foreign = Stimulus.objects.filter(study=study).exclude(token__in=shown).first()
    assert foreign is not None
    url = reverse("studies:stimulus", args=[mine.code, foreign.token])
    assert client.get(url).status_code == 404
    own = reverse("studies:stimulus", args=[mine.code, next(iter(shown))])
    assert client.get(own).status_code == 200
    assert client.get(reverse("studies:stimulus", args=[theirs.code, "nope"])).status_code == 404


def test_an_unknown_session_code_shows_the_friendly_404_page(client: Client, settings: Any) -> None:
    settings.DEBUG = False
    response = client.get(reverse("studies:session", args=[uuid.uuid4()]))
    assert response.status_code == 404
    html = response.content.decode()
    assert 'data-testid="error-page"' in html
    assert "Traceback" not in html and "Session matching query" not in html
    api = client.get(reverse("studies:state", args=[uuid.uuid4()]))
    assert api.status_code == 404
    assert api.json()["code"] == "not_found"


def test_only_mturk_may_frame_the_rater_pages(client: Client, make_study: MakeStudy) -> None:
    study = make_study()
    response = join(client, study, workerId="W1", assignmentId="A1", hitId="H1")
    session = session_from(response)
    for answer in (response, client.get(page(session))):
        assert "X-Frame-Options" not in answer
        policy = answer["Content-Security-Policy"]
        assert policy.startswith("frame-ancestors 'self' https://www.mturk.com")
        assert "https://workersandbox.mturk.com" in policy and "*" not in policy
    admin = client.get(reverse("admin:login"))
    assert admin["X-Frame-Options"] == "DENY"  # everything else stays unframeable


def test_a_rater_turned_away_from_a_full_study_is_told_so(
    client: Client, make_study: MakeStudy
) -> None:
    study = make_study(method="2afc", screenout_code="OUT456")
    study.items.filter(kind="test").update(assigned=study.judgments_per_item)
    session = session_from(join(client, study))
    client.post(page(session), {"decision": "agree"})
    screen = {"inner_width": 1920, "inner_height": 1080, "device_pixel_ratio": 1}
    response = client.post(page(session), screen, follow=True)
    session.refresh_from_db()
    assert session.state == Session.State.SCREENED_OUT
    assert session.screened_reason.startswith("study full")
    html = response.content.decode()
    assert "already has all the answers it needs" in html
    assert "window is too small" not in html
