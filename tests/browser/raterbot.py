"""A keyboard-only rater for the browser tests (enter a study, answer trials), and the admin
steps a researcher takes before (log in, press a study operation)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.urls import reverse

from perceptlab.studies.models import Study
from perceptlab.studies.sessions import has_room

READY_OR_FEEDBACK = (
    '[data-testid="rater"][data-status="ready"], [data-testid="rater"][data-status="feedback"]'
)


def enter(
    page: Any, live_server: Any, study: Study, query: str = "", *, first_trial: bool = True
) -> None:
    """Open the invitation link; agree to the consent and start, by keyboard; then wait for
    the first trial (``first_trial``), or not (a rater who may be turned away)."""
    page.goto(live_server.url + reverse("studies:join", args=[study.invite]) + query)
    page.get_by_test_id("agree").focus()
    page.keyboard.press("Enter")
    # Start is enabled once the page's script has measured the window.
    page.wait_for_selector("[data-testid=start]:enabled")
    page.get_by_test_id("start").focus()
    page.keyboard.press("Enter")
    # The first trial waits for its images to be decoded; on a loaded 2-core machine, a
    # live server whose test database is busy answers "retry" and the page backs off.
    if first_trial:
        page.wait_for_selector(READY_OR_FEEDBACK, timeout=30_000)


def position(page: Any) -> int:
    return int(page.get_by_test_id("rater").get_attribute("data-position"))


def acknowledged(page: Any, timeout: int = 30_000) -> None:
    """Wait until the server has acknowledged every answer the page sent: the page keeps
    unacknowledged answers in localStorage (``perceptlab.pending.<code>``) and drops the
    entry once the judgment POST is answered. The next trial can show before that (it was
    prefetched), so a test reading the database waits for this first."""
    code = page.url.rstrip("/").rsplit("/", 1)[-1]
    page.wait_for_function(
        f"() => localStorage.getItem('perceptlab.pending.{code}') === null", timeout=timeout
    )


def rate(
    page: Any, keys: list[str] | Callable[[int], list[str]], *, limit: int | None = None
) -> list[int]:
    """Answer trials with ``keys`` (or the keys ``keys(position)`` gives for the trial at
    that position) until the session ends (or ``limit`` answers); returns the positions
    answered, in order."""
    answered: list[int] = []
    while limit is None or len(answered) < limit:
        page.wait_for_selector(f"{READY_OR_FEEDBACK}, [data-testid=completion-code]")
        if page.get_by_test_id("completion-code").count():
            break
        if page.get_by_test_id("rater").get_attribute("data-status") == "feedback":
            page.keyboard.press("Enter")
            continue
        answered.append(position(page))
        for key in keys(answered[-1]) if callable(keys) else keys:
            page.keyboard.press(key)
        page.wait_for_function(
            "p => { const r = document.querySelector('[data-testid=rater]');"
            " return !r || r.dataset.status !== 'ready' || r.dataset.position !== String(p); }",
            arg=answered[-1],
        )
    return answered


def rate_until_full(
    browser: Any,
    live_server: Any,
    study: Study,
    keys_for: Callable[[str], Callable[[int], list[str]]],
    *,
    code: str,
    most: int,
) -> int:
    """New raters (``rater-1``, ``rater-2``, …), each in a browser context of its own, answer
    by keyboard (``keys_for(rater)``, as :func:`rate` takes it) until the study turns
    newcomers away; each ends on the completion ``code``. Returns how many it took (fails
    after ``most``)."""
    raters = 0
    while has_room(study=study):
        raters += 1
        assert raters <= most, "the study never reached its target width"
        rater = f"rater-{raters}"
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        page = context.new_page()
        page.set_default_timeout(20_000)
        enter(page, live_server, study, f"?PROLIFIC_PID={rater}")
        assert rate(page, keys_for(rater))
        page.wait_for_selector("[data-testid=completion-code]")
        assert page.get_by_test_id("completion-code").inner_text().strip() == code
        context.close()
    return raters


def turned_away(browser: Any, live_server: Any, study: Study, rater: str) -> str:
    """What a rater arriving now reads on the page that turns them away."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    enter(page, live_server, study, f"?PROLIFIC_PID={rater}", first_trial=False)
    page.wait_for_selector("[data-testid=screen-reason]")
    reason = str(page.get_by_test_id("screen-reason").inner_text())
    context.close()
    return reason


def log_in_as_researcher(page: Any, live_server: Any) -> None:
    """A new superuser logs in to the admin through its login form."""
    from django.contrib.auth import get_user_model

    get_user_model().objects.create_superuser("researcher", "", "a-long-passphrase")
    page.goto(f"{live_server.url}/admin/login/?next=/admin/")
    page.fill("#id_username", "researcher")
    page.fill("#id_password", "a-long-passphrase")
    page.click("input[type=submit]")
    page.wait_for_url(f"{live_server.url}/admin/")


def operate(page: Any, label: str) -> None:
    """Press one of a study's operation buttons (Generate, Launch …) and wait for its message."""
    page.click(f"#study-operations button:has-text('{label}')")
    page.wait_for_selector("ul.messagelist")
