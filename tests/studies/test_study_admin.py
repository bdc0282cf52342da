"""The study admin: building, running and watching a study with nothing but the admin.

(Named test_study_admin.py: a second test_admin.py beside tests/codecs/ would clash in
pytest's default import mode.)
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from studykit import answer_current, make_study, rating_session, synthetic_set

from perceptlab.codecs.generation import run_job
from perceptlab.codecs.intake import import_image
from perceptlab.codecs.models import GenerationJob, ImageSet
from perceptlab.lib.images import encode_png
from perceptlab.studies.models import Item, Judgment, Method, Session, Study
from perceptlab.studies.stimuli import plan_generation

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/studies/study/"


def change_url(study: Study) -> str:
    return f"/admin/studies/study/{study.pk}/change/"


def run_url(study: Study, operation: str) -> str:
    return f"/admin/studies/study/{study.pk}/run/{operation}/"


def dashboard_url(study: Study) -> str:
    return f"/admin/studies/study/{study.pk}/dashboard/"


def messages_of(response: Any) -> str:
    return " | ".join(str(m) for m in response.context["messages"])


def add_form(image_set_id: int, **overrides: Any) -> dict[str, Any]:
    """Everything the add form posts, as a browser would send it."""
    data: dict[str, Any] = {
        "name": "new-study",
        "title": "Which looks closer to the original?",
        "method": "acr",
        "image_set": image_set_id,
        "codecs": ["jpeg", "webp"],
        "target_bpps": "0.25, 0.5,1",
        "crop_width": 64,
        "crop_height": 64,
        "crop_mode": "center",
        "seed": 0,
        "scale": "5",
        "dcr_layout": "side_by_side",
        "allow_undecided": "on",
        "triplet_mode": "btc",
        "boost_alpha": 2.0,
        "pair_plan": "all",
        "pair_band": 1.5,
        "pair_budget": 10,
        "sampling": "balanced",
        "target_width": 0.5,
        "judgments_per_item": 3,
        "trials_per_session": 10,
        "practice_trials": 2,
        "gold_trials": 2,
        "repeat_trials": 1,
        "gold_codec": "jpeg",
        "gold_params": '{"quality": 5}',
        "allowed_devices": ["desktop", "laptop"],
        "gold_pass_fraction": 0.75,
        "gold_min_answered": 2,
        "min_view_seconds": 1,
        "min_flips": 0,
        "session_timeout_minutes": 60,
        "cvvdp_display": "standard_4k",
        "consent_text": "",
        "instructions_text": "",
        "completion_code": "DONE",
        "completion_url": "",
        "screenout_code": "",
        "screenout_url": "",
        "study_images-TOTAL_FORMS": "0",
        "study_images-INITIAL_FORMS": "0",
    }
    data.update(overrides)
    return data


@pytest.fixture
def staff(admin_client: Client) -> Client:
    return admin_client


def test_the_study_admin_and_its_dashboard_send_anonymous_visitors_to_the_login(
    client: Client,
) -> None:
    study = make_study(Method.ACR, build=False)
    for url in (CHANGELIST, change_url(study), dashboard_url(study)):
        response = client.get(url)
        assert response.status_code == 302 and "/admin/login/" in response["Location"]
    response = client.post(run_url(study, "launch"))
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    assert Study.objects.get(pk=study.pk).state == Study.State.DRAFT


def test_a_logged_in_user_who_is_not_staff_is_refused(client: Client) -> None:
    study = make_study(Method.ACR, build=False)
    user = User.objects.create_user("rater", password="pw-123456")
    client.force_login(user)
    response = client.get(dashboard_url(study))
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_staff_without_study_permissions_cannot_see_the_dashboard_or_run_operations(
    client: Client,
) -> None:
    study = make_study(Method.ACR, build=False)
    client.force_login(User.objects.create_user("helper", password="pw-123456", is_staff=True))
    assert client.get(dashboard_url(study)).status_code == 403
    assert client.post(run_url(study, "launch")).status_code == 403
    assert client.get(CHANGELIST).status_code == 403


def test_a_triplet_study_is_authored_in_the_admin_and_a_boosted_one_needs_an_even_crop(
    staff: Client,
) -> None:
    image_set = synthetic_set()
    odd = add_form(image_set.pk, method="triplet", triplet_mode="btc", crop_width=63)
    response = staff.post("/admin/studies/study/add/", odd)
    assert response.status_code == 200
    assert "even width and height" in str(response.context["adminform"].form.errors)
    form = add_form(image_set.pk, method="triplet", triplet_mode="ptc", min_flips=2)
    response = staff.post("/admin/studies/study/add/", form)
    assert response.status_code == 302, response.context["adminform"].form.errors
    study = Study.objects.get(name="new-study")
    assert (study.method, study.triplet_mode, study.required_flips()) == ("triplet", "ptc", 2)
    page = staff.get(change_url(study)).content.decode()
    assert 'name="triplet_mode"' in page and 'name="boost_alpha"' in page


def test_adaptive_sampling_is_chosen_in_the_admin(staff: Client) -> None:
    """Pairwise studies get information gain; ACR and DCR metric guidance."""
    image_set = synthetic_set()
    acr = add_form(image_set.pk, method="acr", sampling="adaptive", name="guided-acr")
    response = staff.post("/admin/studies/study/add/", acr)
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert Study.objects.get(name="guided-acr").is_guided
    form = add_form(image_set.pk, method="2afc", sampling="adaptive", target_width=0.3)
    response = staff.post("/admin/studies/study/add/", form)
    assert response.status_code == 302, response.context["adminform"].form.errors
    study = Study.objects.get(name="new-study")
    assert study.is_adaptive and study.target_width == 0.3
    page = staff.get(dashboard_url(study)).content.decode()
    assert 'id="adaptive"' in page  # the widths against the target


def test_a_study_is_created_in_the_add_form_with_codecs_and_target_bpps(staff: Client) -> None:
    image_set = synthetic_set()
    response = staff.post("/admin/studies/study/add/", add_form(image_set.pk))
    assert response.status_code == 302, response.context["adminform"].form.errors
    study = Study.objects.get(name="new-study")
    assert study.codecs == ["jpeg", "webp"]
    assert study.target_bpps == [0.25, 0.5, 1.0]
    assert study.gold_params == {"quality": 5}
    assert study.state == Study.State.DRAFT
    page = staff.get(change_url(study)).content.decode()
    assert 'value="0.25, 0.5, 1"' in page  # the targets shown back as typed


def test_the_add_form_admits_desktops_and_laptops_unless_the_researcher_says_otherwise(
    staff: Client,
) -> None:
    page = staff.get("/admin/studies/study/add/").content.decode()
    for device, checked in (
        ("desktop", True),
        ("laptop", True),
        ("tablet", False),
        ("phone", False),
    ):
        box = page.split(f'value="{device}"')[1].split(">")[0]
        assert ("checked" in box) is checked, device
    image_set = synthetic_set()
    form = add_form(image_set.pk, allowed_devices=["desktop", "laptop", "tablet"])
    assert staff.post("/admin/studies/study/add/", form).status_code == 302
    assert Study.objects.get(name="new-study").allowed_devices == ["desktop", "laptop", "tablet"]


def test_the_add_form_lists_every_codec_and_says_why_one_is_unavailable(
    staff: Client,
    settings,  # type: ignore[no-untyped-def]
) -> None:
    settings.CODEC_BINARIES = {**settings.CODEC_BINARIES, "bpgenc": "no-such-bpgenc"}
    page = staff.get("/admin/studies/study/add/").content.decode()
    for slug in ("jpeg", "webp", "avif", "jxl", "bpg", "vvc"):
        assert f'value="{slug}"' in page
    assert "BPG — unavailable" in page and "no-such-bpgenc" in page


def test_an_unavailable_codec_is_refused_with_its_reason(staff: Client, settings) -> None:  # type: ignore[no-untyped-def]
    settings.CODEC_BINARIES = {**settings.CODEC_BINARIES, "bpgenc": "no-such-bpgenc"}
    image_set = synthetic_set()
    response = staff.post("/admin/studies/study/add/", add_form(image_set.pk, codecs=["bpg"]))
    assert response.status_code == 200
    assert "bpg is unavailable" in response.content.decode()
    assert not Study.objects.filter(name="new-study").exists()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("target_bpps", "0.5, fast", "expected comma-separated numbers"),
        ("target_bpps", "0.5, -1", "every target bpp must be a positive number"),
        ("gold_params", '{"qualty": 5}', "qualty"),
    ],
)
def test_bad_targets_and_gold_parameters_are_refused_naming_the_value(
    staff: Client, field: str, value: str, message: str
) -> None:
    image_set = synthetic_set()
    response = staff.post("/admin/studies/study/add/", add_form(image_set.pk, **{field: value}))
    assert response.status_code == 200
    assert message in response.context["adminform"].form.errors[field][0]
    assert not Study.objects.exists()


def test_generate_plans_and_enqueues_the_jobs_which_run_inline_under_test(staff: Client) -> None:
    study = make_study(Method.AFC2, build=False, gold_trials=1)
    response = staff.post(run_url(study, "generate"), follow=True)
    assert "10 generation job(s), 10 enqueued" in messages_of(response)  # 2×2×2 + 2 gold
    jobs = plan_generation(study=study)
    assert len(jobs) == 10 and all(j.state == GenerationJob.State.DONE for j in jobs)
    assert study.study_images.count() == 2  # the crop plan was made on the way


def test_build_reports_stimuli_and_items(staff: Client) -> None:
    study = make_study(Method.ACR, build=False, hidden_reference=True)
    staff.post(run_url(study, "generate"))
    response = staff.post(run_url(study, "build"), follow=True)
    # 2 images × (2 codecs × 2 targets + the original) stimuli, all rated; 1 gold per image
    assert "built: 12 stimuli, 10 test items, 2 gold items" in messages_of(response)
    assert study.items.filter(kind=Item.Kind.TEST).count() == 10


def test_build_says_what_to_do_while_jobs_are_unfinished(staff: Client) -> None:
    study = make_study(Method.ACR, build=False)
    plan_generation(study=study)  # planned, never run
    response = staff.post(run_url(study, "build"), follow=True)
    assert "not finished yet" in messages_of(response)
    assert not study.items.exists()


def test_launch_refuses_while_jobs_are_unfinished_and_succeeds_once_they_are_done(
    staff: Client,
) -> None:
    study = make_study(Method.ACR, build=False)
    jobs = plan_generation(study=study)
    response = staff.post(run_url(study, "launch"), follow=True)
    assert "8 generation job(s) not finished yet" in messages_of(response)
    study.refresh_from_db()
    assert study.state == Study.State.DRAFT and study.launched is None
    for job in jobs:
        run_job(job.pk)
    response = staff.post(run_url(study, "launch"), follow=True)
    study.refresh_from_db()
    assert study.state == Study.State.LIVE and study.launched is not None
    assert "launched: " in messages_of(response)
    assert study.items.filter(kind=Item.Kind.TEST).count() == 8  # built on the way


def test_launch_refuses_a_study_without_items(staff: Client) -> None:
    # 2AFC with one condition per image: nothing to pair.
    study = make_study(Method.AFC2, build=False, gold_trials=1, codecs=["jpeg"], target_bpps=[0.5])
    staff.post(run_url(study, "generate"))
    response = staff.post(run_url(study, "launch"), follow=True)
    assert "no test items to rate" in messages_of(response)
    assert Study.objects.get(pk=study.pk).state == Study.State.DRAFT


def test_a_launched_study_shows_its_invitation_link_with_the_prolific_hint(staff: Client) -> None:
    study = make_study(Method.ACR, state=Study.State.DRAFT)
    staff.post(run_url(study, "launch"))
    page = staff.get(change_url(study)).content.decode()
    link = "http://testserver" + reverse("studies:join", args=[study.invite])
    assert link in page
    assert f"{link}?PROLIFIC_PID={{{{%PROLIFIC_PID%}}}}&amp;STUDY_ID=" in page


def test_the_settings_that_shape_the_stimuli_are_locked_once_launched(staff: Client) -> None:
    study = make_study(Method.ACR, state=Study.State.DRAFT)
    editable = staff.get(change_url(study)).content.decode()
    assert 'name="codecs"' in editable and 'name="target_bpps"' in editable
    staff.post(run_url(study, "launch"))
    locked = staff.get(change_url(study)).content.decode()
    assert 'name="codecs"' not in locked and 'name="method"' not in locked
    assert 'name="title"' in locked  # texts stay editable
    response = staff.post(
        change_url(study),
        add_form(
            study.image_set_id,
            name=study.name,
            title="Renamed",
            codecs=["avif"],
            method="2afc",
            **{
                "study_images-TOTAL_FORMS": "2",
                "study_images-INITIAL_FORMS": "2",
                "study_images-0-id": str(study.study_images.all()[0].pk),
                "study_images-0-study": str(study.pk),
                "study_images-1-id": str(study.study_images.all()[1].pk),
                "study_images-1-study": str(study.pk),
            },
        ),
    )
    assert response.status_code == 302
    study.refresh_from_db()
    assert study.title == "Renamed"
    assert study.codecs == ["jpeg", "webp"] and study.method == Method.ACR


def test_pause_resume_and_close_from_the_changelist(staff: Client) -> None:
    study = make_study(Method.ACR, state=Study.State.DRAFT)
    staff.post(run_url(study, "launch"))

    def act(action: str) -> str:
        response = staff.post(
            CHANGELIST, {"action": action, "_selected_action": [study.pk]}, follow=True
        )
        study.refresh_from_db()
        return messages_of(response)

    assert "paused" in act("pause") and study.state == Study.State.PAUSED
    assert "live again" in act("resume") and study.state == Study.State.LIVE
    assert "closed" in act("close") and study.state == Study.State.CLOSED
    assert study.closed is not None
    assert "needs a study that is paused" in act("resume")
    assert study.state == Study.State.CLOSED


def test_the_change_page_offers_the_operations_of_the_study_state(staff: Client) -> None:
    study = make_study(Method.ACR, build=False)
    page = staff.get(change_url(study)).content.decode()
    for operation in ("generate", "build", "preview", "launch", "close"):
        assert run_url(study, operation) in page
    assert run_url(study, "pause") not in page
    assert dashboard_url(study) in page


def test_compute_metrics_is_the_evaluation_apps_operation_run_from_the_study_admin(
    staff: Client,
) -> None:
    """The studies admin never imports evaluation: the evaluation app contributes the
    operation at start-up, and it runs the metrics task (inline under test)."""
    from perceptlab.evaluation.models import StimulusMetric
    from perceptlab.evaluation.tasks import enqueue_metrics
    from perceptlab.studies.admin import CONTRIBUTED, available_operations, contribute_operation

    assert CONTRIBUTED["metrics"] is enqueue_metrics
    draft = make_study(Method.ACR, build=False)
    assert "metrics" in available_operations(draft)
    response = staff.post(run_url(draft, "metrics"), follow=True)
    assert "no stimuli built yet: build them first" in messages_of(response)
    study = make_study(Method.ACR)
    response = staff.post(run_url(study, "metrics"), follow=True)
    assert "objective metrics enqueued for the worker" in messages_of(response)
    measured = StimulusMetric.objects.filter(stimulus__study=study, metric="psnr")
    encoded = study.stimuli.filter(reconstruction__isnull=False).count()
    assert measured.count() == 2 * encoded > 0  # on the full image and on the shown crop
    with pytest.raises(ValueError, match="no study operation 'launch' to contribute"):
        contribute_operation("launch", enqueue_metrics)
    del CONTRIBUTED["metrics"]  # an installation without the evaluation app
    try:
        assert "metrics" not in available_operations(draft)
    finally:
        CONTRIBUTED["metrics"] = enqueue_metrics


def test_operations_only_accept_post(staff: Client) -> None:
    study = make_study(Method.ACR, build=False)
    assert staff.get(run_url(study, "launch")).status_code == 405
    assert staff.post(run_url(study, "explode")).status_code == 404


def test_preview_makes_a_preview_session_and_opens_it_even_in_draft(staff: Client) -> None:
    study = make_study(Method.ACR, state=Study.State.DRAFT)
    response = staff.post(run_url(study, "preview"))
    session = Session.objects.get(study=study)
    assert session.platform == Session.Platform.PREVIEW
    assert response.status_code == 302
    assert response["Location"] == reverse("studies:session", args=[session.code])


def test_preview_before_the_build_says_to_build_first(staff: Client) -> None:
    study = make_study(Method.ACR, build=False)
    response = staff.post(run_url(study, "preview"), follow=True)
    assert "build the stimuli first" in messages_of(response)
    assert not Session.objects.exists()


def test_the_dashboard_is_linked_from_the_changelist_and_renders(staff: Client) -> None:
    study = make_study(Method.ACR, state=Study.State.DRAFT)
    assert dashboard_url(study) in staff.get(CHANGELIST).content.decode()
    response = staff.get(dashboard_url(study))
    assert response.status_code == 200
    assert response.context["dashboard"].coverage.items == 8


def test_the_dashboard_shows_numbers_that_match_the_database(staff: Client) -> None:
    study = make_study(Method.ACR, state=Study.State.DRAFT, min_view_seconds=1)
    staff.post(run_url(study, "launch"))
    first = rating_session(study, participant_id="p1")
    for _ in range(3):
        answer_current(first, view_ms=1500, sent_ms_ago=0)
    second = rating_session(study, participant_id="p2")
    answer_current(second, view_ms=1500, sent_ms_ago=0)
    preview = rating_session(study, platform=Session.Platform.PREVIEW)
    answer_current(preview, view_ms=1500, sent_ms_ago=0)

    page = staff.get(dashboard_url(study)).content.decode()
    counted = Judgment.objects.exclude(trial__session__platform="preview").count()
    assert counted == 4
    wanted = study.items.filter(kind="test").count() * study.judgments_per_item
    assert f'<span id="coverage-total">{counted}/{wanted}</span>' in page
    assert '<td id="raters-active">2</td>' in page
    assert '<td id="raters-previews">1</td>' in page
    assert '<td id="flag-too_fast">4</td>' in page  # 1.5 s on screen, far less on the server


def test_sessions_and_judgments_are_read_only_in_the_admin(staff: Client) -> None:
    study = live_session_study()
    session = Session.objects.get(study=study)
    judgment = Judgment.objects.get()
    listing = staff.get("/admin/studies/session/").content.decode()
    assert "p1" in listing and "1/" in listing  # one answered trial shown as progress
    detail = staff.get(f"/admin/studies/session/{session.pk}/change/")
    assert detail.status_code == 200 and 'name="_save"' not in detail.content.decode()
    assert staff.get("/admin/studies/judgment/add/").status_code == 403
    judgments = staff.get("/admin/studies/judgment/?flag=too_fast")
    assert judgments.status_code == 200
    assert list(judgments.context["cl"].queryset) == [judgment]
    assert list(staff.get("/admin/studies/judgment/?flag=gold_failed").context["cl"].queryset) == []
    response = staff.post(f"/admin/studies/judgment/{judgment.pk}/change/", {"score": 1})
    assert response.status_code == 403
    assert Judgment.objects.get().score == 4.0


def live_session_study() -> Study:
    study = make_study(Method.ACR, min_view_seconds=1)
    answer_current(rating_session(study, participant_id="p1"), score=4.0, sent_ms_ago=0)
    return study


def test_the_preview_action_on_the_changelist_opens_one_studys_preview(staff: Client) -> None:
    study, other = (
        make_study(Method.ACR, state=Study.State.DRAFT),
        make_study(Method.ACR, build=False),
    )
    both = staff.post(
        CHANGELIST, {"action": "preview", "_selected_action": [study.pk, other.pk]}, follow=True
    )
    assert "select one study to preview" in messages_of(both)
    response = staff.post(CHANGELIST, {"action": "preview", "_selected_action": [study.pk]})
    session = Session.objects.get()
    assert session.is_preview and session.study == study
    assert response["Location"] == reverse("studies:session", args=[session.code])


def test_the_add_form_offers_a_jpeg_quality_5_gold(staff: Client) -> None:
    form = staff.get("/admin/studies/study/add/").context["adminform"].form
    assert json.loads(form["gold_params"].value()) == {"quality": 5}
    assert form["gold_codec"].value() == "jpeg"


@pytest.mark.parametrize("given", ["", "{}"])
def test_empty_gold_parameters_are_saved_as_jpeg_quality_5_never_the_codec_default(
    staff: Client, given: str
) -> None:
    image_set = synthetic_set()
    response = staff.post("/admin/studies/study/add/", add_form(image_set.pk, gold_params=given))
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert Study.objects.get(name="new-study").gold_params == {"quality": 5}


def test_the_change_page_shows_each_golds_bpp_and_its_crop_beside_the_original(
    staff: Client,
) -> None:
    study = make_study(Method.AFC2, gold_trials=1, target_bpps=[1.0, 2.0], state="draft")
    page = staff.get(change_url(study)).content.decode()
    assert 'id="gold-preview"' in page
    golds = study.items.filter(kind=Item.Kind.GOLD).select_related("a", "b__reconstruction")
    assert golds.count() == 2
    bpps = []
    for gold in golds:
        assert gold.b is not None and gold.b.reconstruction is not None
        bpps.append(gold.b.reconstruction.achieved_bpp)
        original = study.stimuli.get(study_image=gold.a.study_image, role="original")
        assert f'<img src="{gold.b.png.url}"' in page
        assert f'<img src="{original.png.url}"' in page
        assert f"<td>{gold.b.reconstruction.achieved_bpp:.3f}</td>" in page
    assert f'<span id="gold-bpp-mean">{sum(bpps) / 2:.3f}</span>' in page
    assert f'<span id="gold-bpp-min">{min(bpps):.3f}</span>' in page


def test_the_change_page_says_when_no_gold_is_built_yet(staff: Client) -> None:
    study = make_study(Method.ACR, build=False, practice_trials=2)
    page = staff.get(change_url(study)).content.decode()
    assert "No gold built yet" in page


def test_build_names_the_refused_identical_pairs(staff: Client) -> None:
    # On a flat image JPEG's rate control lands on the same reconstruction at both targets.
    image_set = ImageSet.objects.create(name="flat")
    flat = np.full((64, 96, 3), 100, dtype=np.uint8)
    import_image(image_set=image_set, name="flat.png", data=encode_png(flat))
    study = make_study(Method.AFC2, build=False, codecs=["jpeg", "webp"])
    Study.objects.filter(pk=study.pk).update(image_set=image_set)
    staff.post(run_url(study, "generate"))
    response = staff.post(run_url(study, "build"), follow=True)
    shown = messages_of(response)
    assert "built: 6 stimuli, 4 test items, 0 gold items, 0 practice items" in shown
    assert (
        "refused, no item: flat.png: jpeg at 0.5 bpp (achieved 0.417) vs jpeg at 1 bpp "
        "(achieved 0.417) (pixel-identical crops: no choice to make); flat.png: webp at 0.5"
    ) in shown
