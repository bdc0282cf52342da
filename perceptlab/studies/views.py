"""Rater-facing views: the invitation link, consent, instructions, the trial app and its API.

A rater reaches everything through their session's random ``code``. Nothing served here
(page, JSON, image URL or header) names a codec, a bitrate, a stimulus role or a trial
kind; images are served under their stimulus's opaque token, and only to a session that
holds a trial showing them.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import wraps
from typing import Any

from django.conf import settings
from django.db import IntegrityError, InterfaceError, OperationalError, transaction
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    JsonResponse,
    QueryDict,
)
from django.middleware.csrf import get_token
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import get_script_prefix, reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from perceptlab.studies import images, participants, sessions
from perceptlab.studies.assignment import Snapshot, progress, session_by_code, upcoming_retrying
from perceptlab.studies.forms import (
    CONTROLS_CSS_PX,
    PANE_GAP_DEVICE_PX,
    ConsentForm,
    InvalidAnswer,
    ScreenForm,
    needed_device_pixels,
    parse_answer,
)
from perceptlab.studies.judging import JudgmentRejected, record
from perceptlab.studies.models import (
    ACR_LABELS,
    BTC_BLANK_MS,
    BTC_FLICKER_MS,
    BTC_SHOW_MS,
    DCR_LABELS,
    FLICKER_BLANK_MS,
    FLICKER_MS,
    FLICKER_SHOW_MS,
    PAIRWISE_METHODS,
    Method,
    Scale,
    Session,
    Stimulus,
    Study,
    Trial,
)
from perceptlab.studies.viewing import device_class

logger = logging.getLogger(__name__)

EXTERNAL_MAX_PARAMS = 20
EXTERNAL_MAX_CHARS = 200
COOKIE_SALT = "perceptlab.studies.join"
COOKIE_MAX_AGE = 60 * 60 * 24 * 30
RETRY_AFTER_SECONDS = 2  # what a 503 asks the rater app to wait (it retries with backoff)
LAST_SEEN_EVERY = timedelta(seconds=15)  # skip the write when the session was seen just now
# A token's bytes never change: the browser keeps them for a day without asking again.
FINAL_PAGES: dict[str, str] = {
    Session.State.COMPLETED: "studies/rater/completed.html",
    Session.State.SCREENED_OUT: "studies/rater/screened_out.html",
    Session.State.DECLINED: "studies/rater/declined.html",
}

View = Callable[..., HttpResponse]

# MTurk's ExternalQuestion frames the study on these hosts only.
MTURK_FRAME_ANCESTORS = "'self' https://www.mturk.com https://workersandbox.mturk.com"


def mturk_frameable(view: View) -> View:
    """Let MTurk (and nobody else) show this rater page in its iframe: no X-Frame-Options
    DENY, and a CSP ``frame-ancestors`` naming MTurk's hosts (CSP Level 2 §7.7.3)."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = view(request, *args, **kwargs)
        response.xframe_options_exempt = True  # type: ignore[attr-defined]
        response["Content-Security-Policy"] = f"frame-ancestors {MTURK_FRAME_ANCESTORS}"
        return response

    return wrapper


def session_or_404(code: uuid.UUID) -> Session:
    """The session with this code (404 otherwise); notes that the rater is still here."""
    session = session_by_code(code)
    if session is None:
        raise Http404("no such session")
    _note_seen(session)
    return session


def _note_seen(session: Session) -> None:
    """Keep ``last_seen`` (what gives an idle session's slots back) within 15 s."""
    now = timezone.now()
    if session.last_seen < now - LAST_SEEN_EVERY:
        Session.objects.filter(pk=session.pk).update(last_seen=now)
        session.last_seen = now


# -- the invitation link ------------------------------------------------------------------


@dataclass(frozen=True)
class Arrival:
    """Who arrives through the invitation link, as the recruiting platform says."""

    platform: str
    participant_id: str
    external: dict[str, str]
    mturk_preview: bool = False


def arrival(query: QueryDict) -> Arrival:
    """Prolific (PROLIFIC_PID, STUDY_ID, SESSION_ID), MTurk (workerId, assignmentId, hitId)
    or a direct visit; the first 20 parameters received are kept in ``external``, keys and
    values without control characters and cut to 200 characters."""
    external = {
        _external_text(key): _external_text(query.get(key, ""))
        for key in list(query)[:EXTERNAL_MAX_PARAMS]
    }
    pid = _external_text(query.get("PROLIFIC_PID", "")).strip()
    if pid:
        return Arrival(Session.Platform.PROLIFIC, pid, external)
    if any(key in query for key in ("workerId", "assignmentId", "hitId")):
        worker = _external_text(query.get("workerId", "")).strip()
        preview = query.get("assignmentId") == participants.MTURK_PREVIEW
        return Arrival(Session.Platform.MTURK, worker, external, mturk_preview=preview)
    return Arrival(Session.Platform.DIRECT, "", external)


# C0 and C1 controls (NUL included) and lone surrogates: never part of an id, and NUL or
# a surrogate cannot even be stored in PostgreSQL.
CONTROL_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def _external_text(text: str) -> str:
    return CONTROL_CHARACTERS.sub("", text)[:EXTERNAL_MAX_CHARS]


@require_safe
@mturk_frameable
def join(request: HttpRequest, invite: uuid.UUID) -> HttpResponse:
    study = get_object_or_404(Study, invite=invite)
    came = arrival(request.GET)
    if came.mturk_preview:
        return render(request, "studies/rater/mturk_preview.html", {"study": study})
    session = _returning(request, study, came)
    if session is None:
        if not study.accepts_raters:
            return render(request, "studies/rater/not_open.html", {"study": study})
        session = _new_session(request, study, came)
    response = redirect("studies:session", code=session.code)
    response.set_signed_cookie(
        _cookie_name(study),
        str(session.code),
        salt=COOKIE_SALT,
        max_age=COOKIE_MAX_AGE,
        httponly=True,
        # In MTurk's cross-site iframe only a SameSite=None (hence Secure) cookie comes back.
        samesite="None" if _cross_site_frames(request) else "Lax",
        secure=request.is_secure(),
    )
    return response


def _cross_site_frames(request: HttpRequest) -> bool:
    return bool(settings.PERCEPTLAB_MTURK_FRAMES) and request.is_secure()


def _cookie_name(study: Study) -> str:
    return f"perceptlab_{study.invite.hex[:12]}"


def _returning(request: HttpRequest, study: Study, came: Arrival) -> Session | None:
    """The session this person already has: by platform id, else by this browser's cookie."""
    if came.participant_id:
        return Session.objects.filter(study=study, participant_id=came.participant_id).first()
    code = request.get_signed_cookie(
        _cookie_name(study), default=None, salt=COOKIE_SALT, max_age=COOKIE_MAX_AGE
    )
    try:
        return Session.objects.filter(study=study, code=uuid.UUID(str(code))).first()
    except ValueError:
        return None


def _new_session(request: HttpRequest, study: Study, came: Arrival) -> Session:
    try:
        with transaction.atomic():
            return Session.objects.create(
                study=study,
                platform=came.platform,
                participant_id=came.participant_id,
                external=came.external,
                user_agent=request.headers.get("User-Agent", "")[:500],
            )
    except IntegrityError:
        if not came.participant_id:
            raise
        # The same participant opened the link twice at once: both get the one session.
        return Session.objects.get(study=study, participant_id=came.participant_id)


# -- the session page: consent, instructions, rating, final pages ---------------------------


@require_http_methods(["GET", "HEAD", "POST"])
@mturk_frameable
def session_page(request: HttpRequest, code: uuid.UUID) -> HttpResponse:
    """The one page of a session; what it shows follows the session's state. Never
    cached (not even for Back/Forward), so a rater never sees an answered trial again."""
    response = _session_page(request, code)
    response["Cache-Control"] = "no-store"
    return response


def _session_page(request: HttpRequest, code: uuid.UUID) -> HttpResponse:
    session = session_or_404(code)
    study = session.study
    context = {"session": session, "study": study}
    if session.state in FINAL_PAGES:
        return _final_page(request, session)
    if not _serving(session):
        paused = study.state == Study.State.PAUSED
        template = "paused.html" if paused else "not_open.html"
        return render(request, f"studies/rater/{template}", context)
    if session.state == Session.State.CONSENT:
        return _consent(request, session)
    if session.state == Session.State.INSTRUCTIONS:
        return _instructions(request, session)
    return _rating(request, session)


def _serving(session: Session) -> bool:
    """New trials go out only while the study is live (a researcher's preview always)."""
    return session.is_preview or session.study.state == Study.State.LIVE


def _public_reason(reason: str) -> str:
    """What the screened-out page tells the rater ("" for reasons kept private)."""
    if reason in (sessions.STUDY_FULL, sessions.STUDY_AT_TARGET):
        return (
            "This study already has all the answers it needs, so there is nothing left "
            "for you to rate."
        )
    if reason.startswith("screen too small"):
        return (
            "Your browser window is too small to show the study's images at their true "
            f"size, so we cannot continue. {reason[:1].upper()}{reason[1:]}."
        )
    if reason.startswith(DEVICE_REFUSED):
        return f"{reason[:1].upper()}{reason[1:]}."
    return ""


def _final_page(request: HttpRequest, session: Session) -> HttpResponse:
    context = {
        "session": session,
        "study": session.study,
        # Gold-trial reasons stay private; the window, the device or a full study are
        # worth telling the rater, each in its own words.
        "reason": _public_reason(session.screened_reason),
        "completion_link": participants.completion_link(session=session),
        "mturk": participants.mturk_submit(session=session),
    }
    return render(request, FINAL_PAGES[session.state], context)


def _consent(request: HttpRequest, session: Session) -> HttpResponse:
    form = ConsentForm(request.POST if request.method == "POST" else None)
    if form.is_valid():
        if form.agreed():
            sessions.agree(session=session)
        else:
            sessions.decline(session=session)
        return redirect("studies:session", code=session.code)
    context = {"session": session, "study": session.study, "form": form}
    return render(request, "studies/rater/consent.html", context)


def _instructions(request: HttpRequest, session: Session) -> HttpResponse:
    if _is_consent_post(request):
        # The consent form sent again (double submit, Back): the rater already agreed.
        return redirect("studies:session", code=session.code)
    study = session.study
    form = ScreenForm(request.POST if request.method == "POST" else None)
    problem = ""
    if form.is_valid():
        problem = _screen_problem(session, form)
        recorded = {"screen": form.screen(), "viewing": _session_viewing(session, form)}
        if not problem or session.is_preview:
            Session.objects.filter(pk=session.pk).update(**recorded)
            sessions.start_rating(session=session)
            return redirect("studies:session", code=session.code)
        if form.cleaned_data["gave_up"] or problem.startswith(DEVICE_REFUSED):
            sessions.screen_out(session=session, reason=problem, **recorded)
            return redirect("studies:session", code=session.code)
    width, height = needed_device_pixels(study, 1.0)
    context = {
        "session": session,
        "study": study,
        "form": form,
        "problem": problem,
        "needed": {"width": width, "height": height},
        "size_check": {"width": width, "height": height, "controlsCss": CONTROLS_CSS_PX},
        **_scale_context(study),
    }
    return render(request, "studies/rater/instructions.html", context)


def _is_consent_post(request: HttpRequest) -> bool:
    return request.method == "POST" and "decision" in request.POST


DEVICE_REFUSED = "device not admitted"


def _screen_problem(session: Session, form: ScreenForm) -> str:
    """Why this rater cannot take part from this device and window ("" if they can):
    a device class the study does not admit, or a window too small for 1:1 pixels."""
    study = session.study
    device = device_class(form.device(), session.user_agent)
    allowed = study.allowed_devices or []
    if device not in allowed:
        return f"{DEVICE_REFUSED}: this study needs a {' or '.join(allowed)}, not a {device}"
    return form.shortfall(study)


def _session_viewing(session: Session, form: ScreenForm) -> dict[str, Any]:
    """The session's viewing conditions at the size check, with its history of checks."""
    device = form.device()
    checks = [*session.viewing.get("checks", []), form.screen()][-20:]
    return {
        "device_class": device_class(device, session.user_agent),
        "dpr": device.device_pixel_ratio,
        "window": [device.inner_width, device.inner_height],
        "screen": [device.screen_width, device.screen_height],
        "touch_points": device.touch_points,
        "pointer_fine": device.pointer_fine,
        "zoom": device.zoom,
        "checks": checks,
    }


def _rating(request: HttpRequest, session: Session) -> HttpResponse:
    if request.method == "POST":
        return redirect("studies:session", code=session.code)
    state = rater_state(session)
    if state["trial"] is None:
        return redirect("studies:session", code=session.code)  # finished meanwhile
    study = session.study
    scale = _scale_context(study)
    context = {
        "session": session,
        "study": study,
        "config": _app_config(request, session, scale, state),
        **scale,
    }
    return render(request, "studies/rater/rating.html", context)


def _app_config(
    request: HttpRequest, session: Session, scale: dict[str, Any], state: dict[str, Any]
) -> dict[str, Any]:
    """What the rater app (app.js, viewer.js) needs, embedded in the page with json_script."""
    study = session.study
    return {
        "code": str(session.code),
        "method": study.method,
        "layout": scale["layout"],
        "dcrLayout": study.dcr_layout,
        "points": scale["points"],
        "continuous": scale["continuous"],
        "range": None if study.is_pairwise else list(study.scale_range()),
        "crop": {"width": study.crop_width, "height": study.crop_height},
        "gapDevicePx": PANE_GAP_DEVICE_PX,
        "allowUndecided": study.offers_undecided,
        "minViewSeconds": study.min_view_seconds,
        "minFlips": study.required_flips(),
        **({"triplet": _triplet_config(study)} if layout_of(study) == "triplet" else {}),
        "urls": {
            "state": reverse("studies:state", args=[session.code]),
            "judge": reverse("studies:judge", args=[session.code]),
            "session": reverse("studies:session", args=[session.code]),
            # A trial's images, one by one and several at once (viewer.js, images.py).
            "image": images_prefix(session.code),
            "images": reverse("studies:stimuli", args=[session.code, "-"]).removesuffix("-"),
        },
        "csrfToken": get_token(request),
        "initial": state,
    }


def _triplet_config(study: Study) -> dict[str, Any]:
    """How the page presents a triplet: PTC toggles under the rater's control; BTC flickers
    each side against the pivot at 10 Hz for 8 s, then blanks 3 s (AIC-3). The flicker test
    (AIC-2) is a BTC presentation without the middle pane whose left image (``a``) is the
    original itself: the original side stays still, the test side alternates with the
    original at 10 Hz for 10 s, then 1 s blank; Space shows it again."""
    if study.is_flicker:
        return {
            "mode": "btc",
            "flickerMs": FLICKER_MS,
            "showMs": FLICKER_SHOW_MS,
            "blankMs": FLICKER_BLANK_MS,
        }
    return {
        "mode": study.triplet_mode,
        "flickerMs": BTC_FLICKER_MS,
        "showMs": BTC_SHOW_MS,
        "blankMs": BTC_BLANK_MS,
    }


def layout_of(study: Study) -> str:
    """single (ACR), side_by_side or sequential (DCR), pair (2AFC), triplet."""
    if study.method == Method.ACR:
        return "single"
    if study.method == Method.DCR:
        return str(study.dcr_layout)
    if study.is_triplet or study.is_flicker:
        return "triplet"  # the flicker test: a BTC triplet without its middle pane
    return "pair"


def scale_points(study: Study) -> list[dict[str, Any]]:
    """The category buttons: value, label and keyboard key ("t" stands for 10)."""
    return [
        {"value": value, "name": f"{value:g}", "label": label, "key": _key(value)}
        for value, label in study.scale_points()
    ]


def _key(value: float) -> str:
    return "t" if value == 10 else f"{value:g}"


def _scale_context(study: Study) -> dict[str, Any]:
    labels = DCR_LABELS if study.method == Method.DCR else ACR_LABELS
    ends = (labels[0], labels[-1])
    return {
        "layout": layout_of(study),
        "flickers": study.is_boosted or study.is_flicker,  # the page flickers, no toggles
        "flicker_test": study.is_flicker,
        "points": scale_points(study),
        "continuous": not study.is_pairwise and study.scale == Scale.CONTINUOUS,
        "eleven_points": not study.is_pairwise and study.scale == Scale.ELEVEN,
        "scale_ends": ends,
    }


# -- the JSON API of the trial app ---------------------------------------------------------


def rater_state(session: Session, snapshot: Snapshot | None = None) -> dict[str, Any]:
    """What the trial app runs on: the current trial and the next one (which the browser
    preloads), and progress; from ``snapshot`` (the session read once for this request)
    when given.

    ``redirect`` is the session page whenever there is no trial to show (finished,
    paused, closed, not yet rating).
    """
    snap = snapshot if snapshot is not None else Snapshot.of(session)
    current = following = None
    if session.state == Session.State.RATING and _serving(session):
        coming = upcoming_retrying(snap)
        if coming.current is None:
            sessions.settle(session=session, snapshot=snap)
        else:
            current, following = coming.current, coming.next
            # The server's clock of a trial starts when the browser first gets it, as the
            # current trial or as the next one it preloads and may show at once (trials
            # are bound with it set; this covers trials bound by older versions).
            sent = [t for t in (current, following) if t is not None and t.shown is None]
            if sent:
                now = timezone.now()
                Trial.objects.filter(pk__in=[t.pk for t in sent], shown__isnull=True).update(
                    shown=now
                )
                for trial in sent:
                    trial.shown = now
    answered, total = progress(snapshot=snap)
    study = session.study
    references = _reference_tokens(study) if study.method != Method.ACR else {}
    return {
        "state": session.state,
        "progress": {"answered": answered, "total": total},
        "trial": _trial_json(session, current, references),
        "next": _trial_json(session, following, references),
        "redirect": None if current else reverse("studies:session", args=[session.code]),
    }


# study_image id → the token of its original (the reference shown beside the test image):
# fixed once a study is built, so read once per process and study (keyed by the study's
# invitation UUID, which no other study ever has).
_REFERENCES: dict[uuid.UUID, dict[int, str]] = {}


def _reference_tokens(study: Study) -> dict[int, str]:
    tokens = _REFERENCES.get(study.invite)
    if tokens is None:
        originals = Stimulus.objects.filter(study_id=study.pk, role=Stimulus.Role.ORIGINAL)
        tokens = dict(originals.values_list("study_image_id", "token"))
        _REFERENCES[study.invite] = tokens
    return tokens


_PLACEHOLDER_CODE = uuid.UUID(int=0)


def images_prefix(code: uuid.UUID) -> str:
    """``reverse("studies:stimulus", args=[code, ""])``: the URL of session ``code``'s
    images up to the token. ``reverse()`` costs ~0.1 ms of CPU and two trials go out with
    every judgment, so the URL is reversed once per script prefix, for a placeholder code
    that is then replaced."""
    template = _stimulus_url_template(get_script_prefix())
    return template.replace(str(_PLACEHOLDER_CODE), str(code), 1)


@functools.lru_cache(maxsize=16)
def _stimulus_url_template(script_prefix: str) -> str:
    """The image URL prefix of the placeholder session under ``script_prefix`` (the key:
    ``reverse()`` reads the current one)."""
    return reverse("studies:stimulus", args=[_PLACEHOLDER_CODE, "-"]).removesuffix("-")


def _trial_json(
    session: Session, trial: Trial | None, references: dict[int, str]
) -> dict[str, Any] | None:
    if trial is None:
        return None
    method = session.study.method
    shown_a, shown_b = trial.shown_as()
    reference = None
    if method != Method.ACR:
        reference = references.get(shown_a.study_image_id)
        if reference is None:  # built after this process read the study
            _REFERENCES.pop(session.study.invite, None)
            reference = _reference_tokens(session.study)[shown_a.study_image_id]

    images = images_prefix(session.code)

    def url(token: str | None) -> str | None:
        return None if token is None else f"{images}{token}"

    return {
        "position": trial.position,
        "practice": trial.kind == Trial.Kind.PRACTICE,
        "method": method,
        "images": {
            "reference": url(reference),
            "a": url(shown_a.token),
            "b": url(shown_b.token) if method in PAIRWISE_METHODS and shown_b else None,
        },
    }


def json_endpoint(view: View) -> View:
    """JSON errors instead of HTML pages or tracebacks; responses are never cached."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            response = view(request, *args, **kwargs)
        except Http404:
            message = "This study link is not valid."
            response = JsonResponse(
                {"ok": False, "code": "not_found", "message": message}, status=404
            )
        except (OperationalError, InterfaceError):
            # The database is briefly unreachable (restart, failover, a locked SQLite
            # file): the rater's page keeps the answer and retries; nothing was stored.
            logger.warning("database unavailable: %s %s", request.method, request.path)
            message = "Saving is delayed; retrying. Your answers are kept."
            response = JsonResponse(
                {"ok": False, "code": "unavailable", "message": message}, status=503
            )
            response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        except Exception:
            logger.exception("rater API request failed: %s %s", request.method, request.path)
            message = "Something went wrong on our side. Please wait a moment."
            response = JsonResponse(
                {"ok": False, "code": "server_error", "message": message}, status=500
            )
        response["Cache-Control"] = "no-store"
        return response

    return wrapper


@require_safe
@json_endpoint
def state(request: HttpRequest, code: uuid.UUID) -> HttpResponse:
    snap = _snapshot_or_404(code)
    _note_seen(snap.session)
    return JsonResponse(rater_state(snap.session, snap))


@require_POST
@json_endpoint
def judge(request: HttpRequest, code: uuid.UUID) -> HttpResponse:
    """Store one answer; the response carries the session's new state (the next trial).

    The session is read once (:class:`Snapshot`); the judgment, its flags and the next
    trial's binding are written in one transaction. No ``last_seen`` write: a session
    with a recent judgment is never stale (``assignment.release_stale``).
    """
    snap = _snapshot_or_404(code)
    session = snap.session
    try:
        answer = parse_answer(_body(request))
    except InvalidAnswer as exc:
        body = {"ok": False, "code": "invalid", "message": str(exc), "errors": exc.errors}
        return JsonResponse({**body, **rater_state(session, snap)}, status=400)
    try:
        recorded = record(session=session, answer=answer, snapshot=snap)
    except JudgmentRejected as exc:
        body = {"ok": False, "code": exc.code, "message": exc.message}
        status = 400 if exc.code.startswith("bad_") else 409
        return JsonResponse({**body, **rater_state(session, snap)}, status=status)
    body = {"ok": True, "duplicate": not recorded.created, "feedback": recorded.feedback}
    return JsonResponse({**body, **rater_state(session, snap)})


def _snapshot_or_404(code: uuid.UUID) -> Snapshot:
    snap = Snapshot.by_code(code)
    if snap is None:
        raise Http404("no such session")
    return snap


def _body(request: HttpRequest) -> QueryDict | dict[str, Any]:
    """Form-encoded or JSON fields; a malformed JSON body reads as no fields at all."""
    if request.content_type != "application/json":
        return request.POST
    try:
        data = json.loads(request.body or b"{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


# -- images --------------------------------------------------------------------------------


@require_safe
def stimulus(request: HttpRequest, code: uuid.UUID, token: str) -> HttpResponseBase:
    """The crop PNG, for a session holding a trial that shows it (:mod:`images`; the
    middleware :func:`images.rater_images` answers these requests before the rest of the
    stack, and this view whatever it leaves: a 404, a method other than GET or HEAD)."""
    missing = getattr(request, images.LOOKED_UP, False)
    response = None if missing else images.image_response(request, code, token)
    if response is None:
        raise Http404("no such image")
    return response


@require_safe
def stimuli(request: HttpRequest, code: uuid.UUID, tokens: str) -> HttpResponseBase:
    """Several crop PNGs in one ``multipart/form-data`` response (:mod:`images`: the rater
    page asks for a trial's images at once); answered by the middleware as
    :func:`stimulus` is, and here whatever it leaves."""
    missing = getattr(request, images.LOOKED_UP, False)
    response = None if missing else images.bundle_response(request, code, tokens)
    if response is None:
        raise Http404("no such images")
    return response
