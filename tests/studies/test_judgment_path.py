"""The rater path does the minimum: a judgment POST reads the session once and writes the
judgment, its flags, the next trial and its slot in one transaction (issue: a thousand
raters at once — 25–29 queries per POST before, the next-trial lookup three times)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from studykit import make_study

from perceptlab.studies.models import Item, Judgment, Session, Trial

LARGE_SCREEN = {"inner_width": 1920, "inner_height": 1080, "device_pixel_ratio": 1}
TRANSACTION_CONTROL = ("BEGIN", "SAVEPOINT", "RELEASE SAVEPOINT", "COMMIT")


def _rating(client: Client, method: str, **fields: Any) -> Session:
    study = make_study(method, images=3, trials_per_session=10, judgments_per_item=3, **fields)
    joined = client.get(reverse("studies:join", args=[study.invite]), HTTP_USER_AGENT="test")
    session = Session.objects.get(study=study)
    client.post(joined.url, {"decision": "agree"})
    client.post(joined.url, LARGE_SCREEN)
    session.refresh_from_db()
    assert session.state == Session.State.RATING and session.study.pk  # read before counting
    return session


def _answer(client: Client, session: Session, state: dict[str, Any]) -> Any:
    answer = {"position": state["trial"]["position"], "key": str(uuid.uuid4())}
    answer.update({"flips": 3, "view_ms": 4000, "choice": "a", "score": 4})
    if session.study.is_pairwise:
        del answer["score"]
    else:
        del answer["choice"]
    url = reverse("studies:judge", args=[session.code])
    return client.post(url, answer, content_type="application/json")


def _statements(queries: CaptureQueriesContext) -> tuple[list[str], list[str]]:
    """(data statements, transaction control): SQLite's backend sends BEGIN and COMMIT as
    statements, PostgreSQL's driver does not; only the first list is the request's work."""
    sql = [q["sql"] for q in queries.captured_queries]
    control = [s for s in sql if s.startswith(TRANSACTION_CONTROL)]
    return [s for s in sql if not s.startswith(TRANSACTION_CONTROL)], control


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("method", ["2afc", "acr", "dcr"])
def test_a_judgment_post_runs_at_most_six_queries(client: Client, method: str) -> None:
    session = _rating(client, method)
    state = client.get(reverse("studies:state", args=[session.code])).json()
    for _ in range(4):  # steady state: each answer binds the trial after the next
        with CaptureQueriesContext(connection) as queries:
            response = _answer(client, session, state)
        assert response.status_code == 200 and response.json()["ok"]
        data, control = _statements(queries)
        assert len(data) <= 6, data
        assert len(control) <= 2, control  # one transaction: BEGIN … COMMIT
        state = response.json()
    assert Judgment.objects.filter(trial__session=session).count() == 4


@pytest.mark.django_db(transaction=True)
def test_the_work_is_one_read_and_one_short_transaction(client: Client) -> None:
    session = _rating(client, "2afc")
    state = client.get(reverse("studies:state", args=[session.code])).json()
    with CaptureQueriesContext(connection) as queries:
        response = _answer(client, session, state)
    assert response.json()["ok"]
    data, _ = _statements(queries)
    reads = [s for s in data if s.startswith("SELECT")]
    writes = [s for s in data if not s.startswith("SELECT")]
    # the session with its trials; the candidates for the newly bound trial
    assert len(reads) == 2, reads
    # the judgment; the slot; the trial holding it
    assert [w.split()[0] for w in writes] == ["INSERT", "UPDATE", "INSERT"], writes


@pytest.mark.django_db(transaction=True)
def test_a_state_fetch_with_nothing_to_bind_is_one_query(client: Client) -> None:
    session = _rating(client, "acr")
    url = reverse("studies:state", args=[session.code])
    client.get(url)  # binds the current and the next trial
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    assert len(queries.captured_queries) == 1


@pytest.mark.django_db(transaction=True)
def test_the_slot_and_the_trial_holding_it_commit_together(
    client: Client, monkeypatch: Any
) -> None:
    """A failure after the slot's UPDATE (a killed process, a lost connection) must not
    leave a slot taken with no trial holding it."""
    session = _rating(client, "acr")
    from perceptlab.studies import assignment

    def crash(trial: Trial, **kwargs: Any) -> None:
        assert sum(Item.objects.filter(study=session.study).values_list("assigned", flat=True))
        raise RuntimeError("killed between the slot and the trial")

    monkeypatch.setattr(assignment._TRIAL, "insert", crash)  # the trial's INSERT
    with pytest.raises(RuntimeError):
        assignment.upcoming(session=session)
    monkeypatch.undo()
    items = Item.objects.filter(study=session.study)
    held = Trial.objects.filter(session__study=session.study, holds_slot=True).count()
    assert sum(items.values_list("assigned", flat=True)) == held == 0


@pytest.mark.django_db
def test_a_key_already_used_by_another_session_is_refused_not_acknowledged(
    client: Client,
) -> None:
    mine = _rating(client, "acr")
    state = client.get(reverse("studies:state", args=[mine.code])).json()
    first = _answer(client, mine, state).json()
    key = Judgment.objects.get(trial__session=mine).key
    other_client = Client()
    theirs = _rating(other_client, "acr")
    theirs_state = other_client.get(reverse("studies:state", args=[theirs.code])).json()
    url = reverse("studies:judge", args=[theirs.code])
    answer = {"position": theirs_state["trial"]["position"], "key": str(key), "score": 4}
    response = other_client.post(url, answer, content_type="application/json")
    assert first["ok"] and response.status_code == 409
    assert response.json()["code"] == "key_reused" and response.json()["ok"] is False
    assert not Judgment.objects.filter(trial__session=theirs).exists()


@pytest.mark.django_db
def test_a_database_outage_asks_the_page_to_retry_and_loses_nothing(
    client: Client, monkeypatch: Any
) -> None:
    from django.db import OperationalError

    from perceptlab.studies import views

    session = _rating(client, "acr")
    state = client.get(reverse("studies:state", args=[session.code])).json()

    def unavailable(code: uuid.UUID) -> None:
        raise OperationalError("could not connect to server")

    monkeypatch.setattr(views.Snapshot, "by_code", unavailable)
    response = _answer(client, session, state)
    assert response.status_code == 503 and response["Retry-After"]
    assert response.json()["code"] == "unavailable"
    monkeypatch.undo()
    assert not Judgment.objects.filter(trial__session=session).exists()
    again = _answer(client, session, state)  # the page's retry once the database is back
    assert again.status_code == 200 and again.json()["ok"]
    assert Judgment.objects.filter(trial__session=session).count() == 1


def test_a_score_too_large_for_a_float_is_invalid_not_a_server_error() -> None:
    """The input guard answers such a body first; the validation must hold on its own too."""
    from perceptlab.studies.forms import InvalidAnswer, JudgeForm, parse_answer

    body = {"position": 0, "key": str(uuid.uuid4()), "score": 10**400}
    form = JudgeForm(body)
    assert not form.is_valid() and "score" in form.errors
    with pytest.raises(InvalidAnswer) as refused:
        parse_answer(body)
    assert refused.value.errors == {"score": ["Enter a number."]}


KEY = str(uuid.uuid4())
ANSWER_BODIES: list[dict[str, Any]] = [
    {"position": 3, "key": KEY, "choice": "a", "flips": 4, "view_ms": 3000, "viewing": {"dpr": 1}},
    {"position": "3", "key": KEY.upper(), "score": "4.5", "age_ms": "20.0", "viewing": '{"w": 1}'},
    {"position": 3.0, "key": "{" + KEY + "}", "choice": "u", "flips": None, "view_ms": ""},
    {"position": 3, "key": KEY, "score": 4, "choice": "a"},
    {"position": 3, "key": KEY},
    {"key": KEY, "choice": "a"},
    {"position": -1, "key": "nope", "choice": "x", "flips": 10**9, "score": "nan"},
    {"position": 3.5, "key": 12, "score": "inf", "view_ms": True, "viewing": "{not json"},
    {"position": [], "key": {}, "choice": ["a"], "age_ms": -5, "viewing": [1, 2]},
    {"position": 100_001, "key": KEY, "score": True, "viewing": "3"},
    {"position": " 7 ", "key": " " + KEY + " ", "score": " 2 ", "choice": ""},
    {},
]


@pytest.mark.parametrize("body", ANSWER_BODIES)
def test_the_answer_is_read_as_the_judge_form_reads_it(body: dict[str, Any]) -> None:
    """parse_answer (no form instance per request) gives JudgeForm's answer or its errors,
    message for message, on JSON objects and on form-encoded bodies."""
    from django.http import QueryDict

    from perceptlab.studies.forms import InvalidAnswer, JudgeForm, parse_answer

    encoded = QueryDict(mutable=True)
    for name, value in body.items():
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            encoded[name] = str(value)
    for data in (body, encoded):
        form = JudgeForm(data)
        if form.is_valid():
            assert parse_answer(data) == form.answer()
        else:
            with pytest.raises(InvalidAnswer) as refused:
                parse_answer(data)
            expected = {name: [str(m) for m in messages] for name, messages in form.errors.items()}
            assert refused.value.errors == expected
            assert str(refused.value) == " ".join(m for ms in expected.values() for m in ms)


@pytest.mark.django_db
def test_the_snapshot_builds_the_instances_the_orm_would(client: Client) -> None:
    """The prepared read makes instances without ``Model.__init__``: every field value,
    the saved state and equality match what the ORM loads, trial by trial."""
    from perceptlab.studies.assignment import Snapshot, session_by_code

    session = _rating(client, "2afc")
    state = client.get(reverse("studies:state", args=[session.code])).json()
    _answer(client, session, state)
    snap = Snapshot.by_code(session.code)
    assert snap is not None
    orm_session = Session.objects.select_related("study").get(pk=session.pk)
    alone = session_by_code(session.code)  # the session page's read
    assert alone is not None and session_by_code(uuid.uuid4()) is None
    pairs = [(snap.session, orm_session), (snap.session.study, orm_session.study)]
    pairs += [(alone, orm_session), (alone.study, orm_session.study)]
    for built, loaded in pairs:
        assert type(built) is type(loaded) and built == loaded
        assert not built._state.adding and built._state.db == loaded._state.db
        for field in type(loaded)._meta.concrete_fields:
            assert getattr(built, field.attname) == getattr(loaded, field.attname), field.name
    positions = Trial.objects.filter(session=session).values_list("position", flat=True)
    assert set(snap.trials) == set(positions)
    for position, trial in snap.trials.items():
        loaded_trial = Trial.objects.get(session=session, position=position)
        for field in Trial._meta.concrete_fields:
            assert getattr(trial, field.attname) == getattr(loaded_trial, field.attname), field.name
        judgment = snap.judgment(trial)
        stored = Judgment.objects.filter(trial=loaded_trial).first()
        assert (judgment is None) == (stored is None)
        if judgment is not None and stored is not None:
            for field in Judgment._meta.concrete_fields:
                name = field.attname
                assert getattr(judgment, name) == getattr(stored, name), field.name
    assert any(snap.judgment(t) is not None for t in snap.trials.values())


@pytest.mark.django_db
def test_the_snapshot_makes_a_judgment_only_when_it_is_asked_for(client: Client) -> None:
    """Which positions are answered, and how many, come without making a judgment; the one
    asked for is made once, equals the ORM's and is cached on its trial both ways."""
    from unittest import mock

    from perceptlab.studies import assignment
    from perceptlab.studies.assignment import Snapshot

    session = _rating(client, "acr")
    for _ in range(3):
        state = client.get(reverse("studies:state", args=[session.code])).json()
        assert _answer(client, session, state).json()["ok"]
    with mock.patch.object(assignment._JUDGMENT, "build", wraps=assignment._JUDGMENT.build) as made:
        snap = Snapshot.by_code(session.code)
        assert snap is not None
        answered = sorted(snap.answers)
        assert len(snap.answers) == 3 and len(answered) == 3
        assert all(p in snap.answers for p in answered) and 999 not in snap.answers
        assert len(snap.answered()) == 3 and snap.open_positions()[0] not in snap.answers
        assert made.call_count == 0
        trial = snap.trials[answered[1]]
        judgment = snap.judgment(trial)
        assert judgment is not None and snap.judgment(trial) is judgment
        assert made.call_count == 1
        assert trial.judgment is judgment and judgment.trial is trial  # no query
        unanswered = snap.trials[snap.open_positions()[0]]
        assert snap.judgment(unanswered) is None and made.call_count == 1
    stored = Judgment.objects.get(trial_id=trial.pk)
    for field in Judgment._meta.concrete_fields:
        assert getattr(judgment, field.attname) == getattr(stored, field.attname), field.name
    replaced = Judgment(pk=judgment.pk)
    snap.answers[answered[1]] = replaced  # recording a judgment replaces the row's
    assert snap.judgment(trial) is replaced
    del snap.answers[answered[0]]
    assert answered[0] not in snap.answers and len(snap.answers) == 2


@pytest.mark.django_db
def test_the_snapshot_reads_the_session_once_and_defers_answered_trials_clocks(
    client: Client,
) -> None:
    """One statement brings the session with its study in one row and each trial in a row
    of its own (the session's columns are not repeated per trial); an answered trial's
    ``assigned`` and ``shown`` are deferred, not dropped: asked for, they read back as
    stored, while the trials still to be answered hold theirs."""
    from perceptlab.studies import assignment
    from perceptlab.studies.assignment import Snapshot

    session = _rating(client, "acr")
    for _ in range(3):
        state = client.get(reverse("studies:state", args=[session.code])).json()
        assert _answer(client, session, state).json()["ok"]
    with CaptureQueriesContext(connection) as queries:
        snap = Snapshot.by_code(session.code)
    assert snap is not None and len(queries.captured_queries) == 1
    with connection.cursor() as cursor:
        cursor.execute(assignment._session_sql(), [session.code.hex] * 2)
        rows = cursor.fetchall()
    heads = [row for row in rows if row[0] is not None]
    assert len(heads) == 1 and len(rows) == 1 + len(snap.trials)
    width = assignment._SESSION.width + assignment._STUDY.width
    assert all(value is None for row in rows if row[0] is None for value in row[:width])
    assert all(value is None for value in heads[0][width:])
    answered = [t for t in snap.trials.values() if t.position in snap.answers]
    waiting = [t for t in snap.trials.values() if t.position not in snap.answers]
    assert len(answered) == 3 and waiting
    with CaptureQueriesContext(connection) as queries:
        for trial in waiting:
            assert trial.get_deferred_fields() == set()
            assert trial.assigned is not None
    assert len(queries.captured_queries) == 0
    for trial in answered:
        assert trial.get_deferred_fields() == {"assigned", "shown"}
        stored = Trial.objects.get(pk=trial.pk)
        assert stored.assigned is not None and stored.shown is not None
        assert (trial.assigned, trial.shown) == (stored.assigned, stored.shown)  # read now
        assert trial.get_deferred_fields() == set()
    # a session that does not exist: no row at all
    assert Snapshot.by_code(uuid.uuid4()) is None
