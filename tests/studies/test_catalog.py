"""The rater path's per-process catalog of a study's items and the image access query.

The catalog must never serve an item that is not the database's (a stale or foreign
row would show a rater the wrong stimulus), and the hand-written image query must answer
exactly as the ORM query it replaced, for every stimulus of a study and every role."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.db import connection
from django.db.models import Exists, OuterRef, Q
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from studykit import make_study

from perceptlab.studies import catalog
from perceptlab.studies.assignment import upcoming
from perceptlab.studies.images import _stimulus_of
from perceptlab.studies.models import Item, Method, Session, Stimulus, Study, Trial

pytestmark = pytest.mark.django_db

SCREEN = {"inner_width": 1920, "inner_height": 1080, "device_pixel_ratio": 1}


def _rating_session(client: Client, study: Study) -> Session:
    joined = client.get(reverse("studies:join", args=[study.invite]), HTTP_USER_AGENT="test")
    client.post(joined.url, {"decision": "agree"})
    client.post(joined.url, SCREEN)
    return Session.objects.get(study=study)


def test_the_catalog_holds_each_item_with_its_stimuli_as_the_database_has_them() -> None:
    study = make_study("2afc", images=2)
    ids = list(study.items.values_list("pk", flat=True))
    held = catalog.items_of(study, ids)
    assert sorted(held) == sorted(ids)
    for item in Item.objects.filter(study=study).select_related("a", "b"):
        mine = held[item.pk]
        assert (mine.a.token, mine.b.token, mine.kind) == (item.a.token, item.b.token, item.kind)
    with CaptureQueriesContext(connection) as queries:
        again = catalog.items_of(study, ids)
    assert not queries.captured_queries and again[ids[0]] is held[ids[0]]


def test_an_item_built_after_the_catalog_was_read_is_found() -> None:
    study = make_study("acr", images=2)
    catalog.items_of(study, study.items.values_list("pk", flat=True))
    stimulus = study.stimuli.filter(role=Stimulus.Role.ORIGINAL).first()
    assert stimulus is not None
    # another process builds it: no signal reaches this one
    created = Item.objects.bulk_create([Item(study=study, kind=Item.Kind.GOLD, a=stimulus)])
    assert catalog.items_of(study, [created[0].pk])[created[0].pk].a.token == stimulus.token


def test_a_study_is_not_served_another_studys_items_under_the_same_key() -> None:
    study = make_study("acr", images=1)
    ids = list(study.items.values_list("pk", flat=True))
    catalog.items_of(study, ids)
    namesake = Study(pk=study.pk, created=study.created.replace(year=2001))
    with CaptureQueriesContext(connection) as queries:
        catalog.items_of(namesake, ids)
    assert len(queries.captured_queries) == 1  # not served from the other's entry
    assert catalog.items_of(study, [10**9]) == {}  # not the study's: left out


def test_binding_leaves_the_shared_items_untouched(client: Client) -> None:
    study = make_study("2afc", images=2, trials_per_session=4, judgments_per_item=3)
    session = _rating_session(client, study)
    ids = list(study.items.values_list("pk", flat=True))
    before = {pk: item.assigned for pk, item in catalog.items_of(study, ids).items()}
    now = upcoming(session=session)
    assert now.current is not None and now.next is not None
    after = {pk: item.assigned for pk, item in catalog.items_of(study, ids).items()}
    assert after == before
    taken = Item.objects.filter(study=study, assigned=1).count()
    assert taken == 2  # the database moved, the catalog's copies did not


def _orm_stimulus_of(code: uuid.UUID, token: str) -> Any:
    """The ORM query images._stimulus_of replaced, kept as its reference."""
    trials = Trial.objects.filter(session__code=code)
    shown = trials.filter(Q(item__a=OuterRef("pk")) | Q(item__b=OuterRef("pk")))
    beside = Exists(trials.filter(item__a__study_image=OuterRef("study_image")))
    as_reference = Q(beside, role=Stimulus.Role.ORIGINAL) & ~Q(study__method=Method.ACR)
    found = Stimulus.objects.filter(Q(Exists(shown)) | as_reference, token=token)
    return found.only("png", "png_sha256").order_by().first()


@pytest.mark.parametrize("method", ["2afc", "acr", "dcr"])
def test_the_image_query_answers_as_the_orm_query_for_every_stimulus(
    client: Client, method: str
) -> None:
    study = make_study(method, images=3, trials_per_session=3, judgments_per_item=2)
    other = make_study(method, images=1)
    session = _rating_session(client, study)
    client.get(reverse("studies:state", args=[session.code]))  # binds two trials
    stimuli = list(Stimulus.objects.filter(study__in=[study, other]))
    granted = 0
    for code in (session.code, uuid.uuid4()):
        for stimulus in stimuli:
            ours = _stimulus_of(code, stimulus.token)
            theirs = _orm_stimulus_of(code, stimulus.token)
            assert (ours is None) == (theirs is None), (stimulus.role, code)
            if ours is not None:
                granted += 1
                assert (ours.png_name, ours.png_sha256) == (theirs.png.name, theirs.png_sha256)
    shown_here = 2 if method == "acr" else 3  # 2AFC and DCR also show the reference
    assert shown_here <= granted < len(stimuli)


def test_an_image_request_is_one_query(client: Client) -> None:
    study = make_study("2afc", images=2, trials_per_session=2)
    session = _rating_session(client, study)
    state = client.get(reverse("studies:state", args=[session.code])).json()
    url = state["trial"]["images"]["a"]
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200 and len(queries.captured_queries) == 1
    assert b"".join(response.streaming_content).startswith(b"\x89PNG")
