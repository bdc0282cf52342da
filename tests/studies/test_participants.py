"""What a study owes its participants: per-session completion codes, the MTurk
ExternalQuestion submission, Prolific's approval CSV, and deleting one participant's data."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db.models import Count, Q
from django.test import Client
from django.urls import reverse
from studykit import answer_current, complete, make_study, rating_session

from perceptlab.studies.models import Item, Judgment, Session, Study, Trial
from perceptlab.studies.participants import completion_link

pytestmark = pytest.mark.django_db

PROLIFIC_DONE = "https://app.prolific.com/submissions/complete?cc=STATIC1"


def draft(**fields: Any) -> Study:
    """A study with nothing built: enough for final pages, approvals and lookups."""
    fields.setdefault("completion_code", "STATIC1")
    fields.setdefault("screenout_code", "OUT1")
    return make_study("acr", build=False, **fields)


def finished(study: Study, state: str = Session.State.COMPLETED, **fields: Any) -> Session:
    return Session.objects.create(study=study, state=state, **fields)


def final_page(client: Client, session: Session) -> str:
    response = client.get(reverse("studies:session", args=[session.code]))
    assert response.status_code == 200
    return response.content.decode()


# -- completion codes -----------------------------------------------------------------------


def test_each_session_gets_its_own_code_shown_next_to_the_studys_code(client: Client) -> None:
    study = draft()
    first, second = finished(study), finished(study)
    assert first.completion_secret != second.completion_secret
    assert len(first.completion_secret) == 12
    html = final_page(client, first)
    assert 'data-testid="completion-code">STATIC1<' in html
    assert f'data-testid="session-code">{first.completion_secret}<' in html
    assert second.completion_secret not in html


def test_without_a_static_code_the_session_code_is_the_completion_code(client: Client) -> None:
    session = finished(draft(completion_code=""))
    html = final_page(client, session)
    assert 'data-testid="completion-code"' not in html
    assert f'data-testid="session-code">{session.completion_secret}<' in html


def test_the_completion_url_gets_the_session_code_as_cc_when_it_has_none(
    client: Client,
) -> None:
    session = finished(draft(completion_url="https://example.org/done"))
    link = f"https://example.org/done?cc={session.completion_secret}"
    assert completion_link(session=session) == link
    html = final_page(client, session)
    assert f'href="{link}"' in html and f'content="5;url={link}"' in html


def test_a_completion_url_with_other_parameters_gets_cc_appended(client: Client) -> None:
    session = finished(draft(completion_url="https://example.org/done?study=7#top"))
    expected = f"https://example.org/done?study=7&cc={session.completion_secret}#top"
    assert completion_link(session=session) == expected
    assert expected.replace("&", "&amp;") in final_page(client, session)


def test_a_completion_url_that_already_has_cc_is_kept_as_it_is(client: Client) -> None:
    session = finished(draft(completion_url=PROLIFIC_DONE))
    assert completion_link(session=session) == PROLIFIC_DONE
    html = final_page(client, session)
    assert f'href="{PROLIFIC_DONE}"' in html
    assert f"cc={session.completion_secret}" not in html


def test_a_screened_out_rater_sees_the_screenout_code_and_url_not_a_completion_code(
    client: Client,
) -> None:
    study = draft(completion_url=PROLIFIC_DONE, screenout_url="https://example.org/out")
    session = finished(study, Session.State.SCREENED_OUT, screened_reason="gold failed")
    html = final_page(client, session)
    assert 'data-testid="screenout-code">OUT1<' in html
    assert 'href="https://example.org/out"' in html
    assert session.completion_secret not in html and "STATIC1" not in html


# -- MTurk ExternalQuestion ---------------------------------------------------------------------


def mturk_session(client: Client, study: Study, turk_submit_to: str) -> Session:
    """An MTurk worker arrives through the invitation link and finishes."""
    params = {
        "assignmentId": "ASSIGN1",
        "hitId": "HIT1",
        "workerId": "WORKER1",
        "turkSubmitTo": turk_submit_to,
    }
    response = client.get(reverse("studies:join", args=[study.invite]), params)
    assert response.status_code == 302
    session = Session.objects.get(study=study, participant_id="WORKER1")
    Session.objects.filter(pk=session.pk).update(state=Session.State.COMPLETED)
    return session


@pytest.mark.parametrize(
    ("turk_submit_to", "action"),
    [
        ("https://www.mturk.com", "https://www.mturk.com/mturk/externalSubmit"),
        (
            "https://workersandbox.mturk.com/",
            "https://workersandbox.mturk.com/mturk/externalSubmit",
        ),
    ],
)
def test_a_finished_mturk_worker_posts_the_assignment_and_codes_back_to_mturk(
    client: Client, turk_submit_to: str, action: str
) -> None:
    study = draft(state=Study.State.LIVE)
    session = mturk_session(client, study, turk_submit_to)
    html = final_page(client, session)
    assert f'<form method="post" action="{action}"' in html
    assert '<input type="hidden" name="assignmentId" value="ASSIGN1">' in html
    assert f'<input type="hidden" name="session_code" value="{session.completion_secret}">' in html
    assert '<input type="hidden" name="completion_code" value="STATIC1">' in html
    assert 'data-testid="mturk-submit"' in html  # the fallback button
    assert 'getElementById("mturk-form").submit()' in html
    assert "http-equiv" not in html


@pytest.mark.parametrize(
    "turk_submit_to",
    [
        "https://evil.example",
        "https://www.mturk.com.evil.example",
        "http://www.mturk.com",
        "javascript:alert(1)",
        "",
    ],
)
def test_a_foreign_turk_submit_to_gets_no_form_but_a_message(
    client: Client, turk_submit_to: str
) -> None:
    study = draft(state=Study.State.LIVE, completion_url="https://example.org/done")
    html = final_page(client, mturk_session(client, study, turk_submit_to))
    assert "<form" not in html and "externalSubmit" not in html
    assert 'data-testid="mturk-refused"' in html and "contact the researcher" in html
    assert "evil.example" not in html and "javascript:" not in html
    assert "http-equiv" not in html  # no redirect anywhere else either


# -- Prolific approvals ----------------------------------------------------------------------


def approvals(study: Study) -> list[dict[str, str]]:
    out = io.StringIO()
    call_command("prolific_approvals", "--study", study.name, stdout=out)
    return list(csv.DictReader(io.StringIO(out.getvalue())))


def test_the_approval_csv_has_one_row_per_prolific_session_with_its_status_and_code() -> None:
    study = draft()
    done = finished(study, platform="prolific", participant_id="P-DONE")
    finished(
        study,
        Session.State.SCREENED_OUT,
        platform="prolific",
        participant_id="P-OUT",
        screened_reason="gold failed: 0 of 2",
    )
    finished(study, Session.State.DECLINED, platform="prolific", participant_id="P-DECLINED")
    finished(study, Session.State.RATING, platform="prolific", participant_id="P-LEFT")
    finished(study, Session.State.CONSENT, platform="prolific", participant_id="P-NEW")
    finished(study, platform="preview")
    finished(study, platform="direct")
    finished(study, platform="mturk", participant_id="WORKER1")
    assert approvals(study) == [
        {
            "participant_id": "P-DONE",
            "status": "completed",
            "completion_code": done.completion_secret,
            "screened_reason": "",
        },
        {
            "participant_id": "P-OUT",
            "status": "screened_out",
            "completion_code": "OUT1",
            "screened_reason": "gold failed: 0 of 2",
        },
        *(
            {
                "participant_id": pid,
                "status": "returned",
                "completion_code": "",
                "screened_reason": "",
            }
            for pid in ("P-DECLINED", "P-LEFT", "P-NEW")
        ),
    ]


def test_a_participant_id_that_looks_like_a_formula_is_neutralised() -> None:
    study = draft()
    finished(study, Session.State.DECLINED, platform="prolific", participant_id="=HYPERLINK(1)")
    assert approvals(study)[0]["participant_id"] == "'=HYPERLINK(1)"


def test_the_approval_csv_can_be_written_to_a_file(tmp_path: Path) -> None:
    study = draft()
    finished(study, platform="prolific", participant_id="P1")
    out = io.StringIO()
    call_command(
        "prolific_approvals", "--study", study.name, "--out", tmp_path / "a.csv", stdout=out
    )
    assert "1 Prolific session(s)" in out.getvalue()
    rows = list(csv.reader((tmp_path / "a.csv").open()))
    assert rows[0] == ["participant_id", "status", "completion_code", "screened_reason"]
    assert rows[1][:2] == ["P1", "completed"]


def test_the_study_admin_downloads_the_approval_csv_of_one_study(admin_client: Client) -> None:
    study, other = draft(), draft()
    finished(study, platform="prolific", participant_id="P1")
    action = "download_prolific_approvals"
    response = admin_client.post(
        "/admin/studies/study/", {"action": action, "_selected_action": [study.pk]}
    )
    assert response["Content-Type"].startswith("text/csv")
    assert f"{study.name}-prolific-approvals.csv" in response["Content-Disposition"]
    assert response.content.decode().splitlines()[1].startswith("P1,completed,")
    both = admin_client.post(
        "/admin/studies/study/",
        {"action": action, "_selected_action": [study.pk, other.pk]},
        follow=True,
    )
    assert "select one study" in " ".join(str(m) for m in both.context["messages"])


def test_the_approval_command_names_an_unknown_study_and_lists_the_valid_ones() -> None:
    study = draft()
    with pytest.raises(CommandError, match=rf"no study 'nope'; studies: .*{study.name}"):
        call_command("prolific_approvals", "--study", "nope")


# -- deleting a participant's data ----------------------------------------------------------


def assert_slots_match_trials(study: Study) -> None:
    """Every item's ``assigned`` equals its trials holding a slot."""
    items = study.items.annotate(held=Count("trials", filter=Q(trials__holds_slot=True)))
    assert [(item.pk, item.assigned) for item in items] == [(item.pk, item.held) for item in items]


def full_acr_study() -> Study:
    """8 test items, one judgment each, 8 trials a rater: one rater takes every slot."""
    return make_study("acr", judgments_per_item=1, trials_per_session=8)


def test_deleting_a_participant_removes_their_data_and_frees_their_slots_for_others() -> None:
    study = full_acr_study()
    first = rating_session(study, platform="prolific", participant_id="P1")
    answered = complete(first)
    assert len(answered) == 8 and first.state == Session.State.COMPLETED
    tests = study.items.filter(kind=Item.Kind.TEST)
    assert tests.count() == 8 and not tests.filter(assigned=0).exists()
    turned_away = rating_session(study, participant_id="P2")
    assert turned_away.state == Session.State.SCREENED_OUT  # study full

    out = io.StringIO()
    call_command("delete_participant", "--study", study.name, "--id", "P1", "--yes", stdout=out)

    assert "8 trial(s), 8 judgment(s), 8 slot(s) given back" in out.getvalue()
    assert not Session.objects.filter(pk=first.pk).exists()
    assert not Trial.objects.filter(pk__in=[t.pk for t in answered]).exists()
    assert not Judgment.objects.filter(trial__session_id=first.pk).exists()
    assert Session.objects.filter(pk=turned_away.pk).exists()
    assert not tests.exclude(assigned=0).exists()
    assert_slots_match_trials(study)
    second = rating_session(study, participant_id="P3")
    assert len(complete(second)) == 8
    assert_slots_match_trials(study)


def test_deleting_a_rater_in_the_middle_of_a_session_keeps_the_slot_counts_consistent() -> None:
    study = full_acr_study()
    leaving = rating_session(study, platform="prolific", participant_id="P1")
    answer_current(leaving)
    answer_current(leaving)
    staying = rating_session(study, participant_id="P2")
    assert_slots_match_trials(study)
    assert leaving.trials.filter(holds_slot=True, judgment__isnull=True).exists()

    call_command(
        "delete_participant", "--study", study.name, "--id", "P1", "--yes", stdout=io.StringIO()
    )

    assert not Session.objects.filter(participant_id="P1").exists()
    assert_slots_match_trials(study)
    assert len(complete(staying)) == 8  # the leaver's slots, answered or not, came back


def test_delete_participant_asks_first_and_deletes_nothing_unless_told_yes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    study = draft()
    session = finished(study, platform="prolific", participant_id="P1")
    monkeypatch.setattr("builtins.input", lambda prompt: "no")
    out = io.StringIO()
    with pytest.raises(CommandError, match="nothing deleted"):
        call_command("delete_participant", "--study", study.name, "--id", "P1", stdout=out)
    assert "This deletes" in out.getvalue()
    assert Session.objects.filter(pk=session.pk).exists()
    monkeypatch.setattr("builtins.input", lambda prompt: "yes")
    call_command("delete_participant", "--study", study.name, "--id", "P1", stdout=io.StringIO())
    assert not Session.objects.filter(pk=session.pk).exists()


def test_a_direct_visitor_is_found_by_their_session_code() -> None:
    study = draft()
    session = finished(study)
    call_command(
        "delete_participant",
        "--study",
        study.name,
        "--id",
        str(session.code),
        "--yes",
        stdout=io.StringIO(),
    )
    assert not Session.objects.filter(pk=session.pk).exists()


def test_delete_participant_names_an_unknown_study_and_lists_the_valid_ones() -> None:
    study = draft()
    with pytest.raises(CommandError, match=rf"no study 'nope'; studies: .*{study.name}"):
        call_command("delete_participant", "--study", "nope", "--id", "P1", "--yes")


def test_delete_participant_names_an_unknown_participant() -> None:
    study = draft()
    finished(study, platform="prolific", participant_id="P1")
    with pytest.raises(CommandError, match=rf"'{study.name}' has no session of participant 'P9'"):
        call_command("delete_participant", "--study", study.name, "--id", "P9", "--yes")
    assert Session.objects.count() == 1


def test_the_session_admin_deletes_the_selected_participants_after_confirmation(
    admin_client: Client,
) -> None:
    study = full_acr_study()
    leaving = rating_session(study, platform="prolific", participant_id="P1")
    answer_current(leaving)
    kept = finished(study, platform="prolific", participant_id="P2")
    selected = {"action": "delete_participants_data", "_selected_action": [leaving.pk]}

    confirm = admin_client.post("/admin/studies/session/", selected)
    assert confirm.status_code == 200
    assert "1 judgment(s)" in confirm.content.decode()
    assert Session.objects.filter(pk=leaving.pk).exists()

    done = admin_client.post(
        "/admin/studies/session/", {**selected, "confirmed": "yes"}, follow=True
    )
    assert "deleted" in " ".join(str(m) for m in done.context["messages"])
    assert list(Session.objects.all()) == [kept]
    assert_slots_match_trials(study)


def test_staff_without_the_delete_permission_is_not_offered_the_deletion(client: Client) -> None:
    from django.contrib.auth.models import Permission, User

    user = User.objects.create_user("viewer", password="pw", is_staff=True)
    user.user_permissions.add(
        Permission.objects.get(codename="view_session", content_type__app_label="studies")
    )
    client.force_login(user)
    session = finished(draft(), platform="prolific", participant_id="P1")
    listing = client.get("/admin/studies/session/").content.decode()
    assert "delete_participants_data" not in listing
    response = client.post(
        "/admin/studies/session/",
        {
            "action": "delete_participants_data",
            "_selected_action": [session.pk],
            "confirmed": "yes",
        },
    )
    assert response.status_code in (200, 302)
    assert Session.objects.filter(pk=session.pk).exists()
