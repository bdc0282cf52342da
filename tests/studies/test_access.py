"""Per-study access, tried with three staff personas: the study's owner, a collaborator
and a staff account with no business in it (plus a superuser and a staff account holding
only model-level view permissions). Raw judgments carry participant ids: only the first
two (and superusers) may see any page or export of the study."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse
from evalkit import rated_study

from perceptlab.studies.models import Session, Stimulus, Study

pytestmark = pytest.mark.django_db

PARTICIPANT = "PROLIFIC-5f2a9c"
EXPORTS = ["judgments.csv", "stimuli.csv", "metrics.csv", "scores.csv", "report.html"]


def _staff(name: str, *perms: str) -> User:
    user = User.objects.create_user(name, password="pw-123456", is_staff=True)
    for codename in perms:
        app = "studies" if codename.endswith(("study", "session", "judgment")) else "codecs"
        user.user_permissions.add(
            Permission.objects.get(codename=codename, content_type__app_label=app)
        )
    return user


def _client(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def personas() -> dict[str, Any]:
    owner = _staff("owner", "add_study", "change_study", "view_study", "view_session")
    collaborator = _staff("collaborator")  # no model permissions: the study is shared
    stranger = _staff("stranger")
    onlooker = _staff("onlooker", "view_study", "view_session", "view_judgment")
    root = User.objects.create_superuser("root", password="pw-123456")
    study = rated_study(
        "acr", images=1, raters=2, seed=3, trials_per_session=4, judgments_per_item=2
    )
    study.owner = owner
    study.save(update_fields=["owner"])
    study.collaborators.add(collaborator)
    for index, session in enumerate(Session.objects.filter(study=study)):
        session.participant_id = f"{PARTICIPANT}-{index}"
        session.save(update_fields=["participant_id"])
    return {
        "study": study,
        "owner": owner,
        "collaborator": collaborator,
        "stranger": stranger,
        "onlooker": onlooker,
        "root": root,
    }


def _pages(study: Study) -> list[str]:
    return [
        reverse("evaluation:report", args=[study.pk]),
        *(reverse("evaluation:export", args=[study.pk, name]) for name in EXPORTS),
        f"/admin/studies/study/{study.pk}/dashboard/",
        f"/admin/studies/study/{study.pk}/change/",
    ]


@pytest.mark.parametrize("who", ["owner", "collaborator", "root"])
def test_the_owner_a_collaborator_and_a_superuser_see_every_page_and_export(
    personas: dict[str, Any], who: str, settings: Any
) -> None:
    settings.EVALUATION_RESAMPLES = 50  # the report's bootstrap at a size a test affords
    client, study = _client(personas[who]), personas["study"]
    for url in _pages(study):
        assert client.get(url).status_code == 200, url
    judgments = client.get(reverse("evaluation:export", args=[study.pk, "judgments.csv"]))
    assert PARTICIPANT in judgments.content.decode()
    listing = client.get("/admin/studies/study/")
    assert listing.status_code == 200 and study.name in listing.content.decode()


@pytest.mark.parametrize("who", ["stranger", "onlooker"])
def test_staff_without_access_to_the_study_get_403_everywhere_and_no_participant_id(
    personas: dict[str, Any], who: str
) -> None:
    client, study = _client(personas[who]), personas["study"]
    for url in _pages(study):
        response = client.get(url)
        # the admin's change page answers a study outside the user's list as it answers
        # one that does not exist: back to the admin's index
        refused = response.status_code in (403, 404) or response.get("Location") == "/admin/"
        assert refused, (url, response.status_code)
        assert PARTICIPANT not in response.content.decode()
    bundle = client.get(reverse("evaluation:export", args=[study.pk, "bundle.zip"]))
    assert bundle.status_code == 403
    for listing in ("/admin/studies/study/", "/admin/studies/session/", "/admin/studies/judgment/"):
        response = client.get(listing)
        body = response.content.decode()
        assert PARTICIPANT not in body and study.name not in body, listing


def test_the_stranger_is_refused_the_admin_and_the_stored_files(personas: dict[str, Any]) -> None:
    client, study = _client(personas["stranger"]), personas["study"]
    assert client.get("/admin/studies/study/").status_code == 403
    stimulus = Stimulus.objects.filter(study=study).first()
    assert stimulus is not None
    media = reverse("media", args=[stimulus.png.name])
    assert client.get(media).status_code == 404
    assert _client(personas["collaborator"]).get(media).status_code == 200


def test_a_collaborator_without_the_change_permission_cannot_change_the_study(
    personas: dict[str, Any],
) -> None:
    client, study = _client(personas["collaborator"]), personas["study"]
    response = client.post(f"/admin/studies/study/{study.pk}/run/pause/")
    assert response.status_code == 403
    assert Study.objects.get(pk=study.pk).state == study.state
    owner = _client(personas["owner"])
    assert owner.post(f"/admin/studies/study/{study.pk}/run/pause/").status_code == 302
    assert Study.objects.get(pk=study.pk).state == Study.State.PAUSED


def test_a_study_created_in_the_admin_belongs_to_its_creator(personas: dict[str, Any]) -> None:
    from test_study_admin import add_form

    owner = personas["owner"]
    owner.user_permissions.add(Permission.objects.get(codename="view_imageset"))
    image_set = personas["study"].image_set
    response = _client(owner).post("/admin/studies/study/add/", add_form(image_set.pk))
    assert response.status_code == 302
    created = Study.objects.get(name="new-study")
    assert created.owner == owner
    report = reverse("evaluation:report", args=[created.pk])
    assert _client(personas["collaborator"]).get(report).status_code == 403  # not shared
