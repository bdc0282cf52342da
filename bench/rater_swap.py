"""Benchmark: how fast the rating page swaps trials and shows the first one, in real Chromium.

Builds a 2AFC study of synthetic 768×512 images with 512×512 crops (the default crop) in a
throw-away SQLite test database, serves it from Django's live-server thread on 127.0.0.1,
and lets headless Chromium (Debian's, 1400×900 CSS px, ratio 1) answer ``--trials`` trials by
keyboard, each answer ``--think-ms`` (default 500) after its trial is ready. The page's
performance marks give, on one page load:

1. swap time: each answer key's ``perceptlab:answer`` mark → the next ``perceptlab:drawn``
   mark (the next trial drawn on its canvases), p50 and p95 (goal p95 ≤ 50 ms);
2. first trial: navigation start → the first ``perceptlab:drawn`` (goal ≤ 1 s).

The machine is shared: numbers are one run's, printed next to the goals; nothing asserts them.

    .venv/bin/python bench/rater_swap.py [--trials 30] [--headed]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path(os.environ.get("PERCEPTLAB_CHROMIUM", "/usr/bin/chromium"))
GOAL_SWAP_P95_MS = 50.0
GOAL_FIRST_MS = 1000.0
CROP = 512
PAIRS_PER_IMAGE = 6  # 2AFC pairs among an image's 4 conditions (jpeg, webp × 2 targets)
MARKS = """() => performance.getEntriesByType("mark")
  .filter((m) => m.name.startsWith("perceptlab:"))
  .map((m) => [m.name, m.startTime])"""


def setup_django(workdir: Path) -> None:
    """Django on an in-memory SQLite test database (shared with the live-server thread)."""
    sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "tests" / "browser")]
    os.environ["DJANGO_SETTINGS_MODULE"] = "perceptlab.settings"
    os.environ["PERCEPTLAB_MEDIA_ROOT"] = str(workdir / "media")
    os.environ["PERCEPTLAB_TASKS"] = "immediate"
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's loop + the ORM
    import django
    from django.db import connection
    from django.test.utils import setup_test_environment

    django.setup()
    setup_test_environment()
    connection.creation.create_test_db(verbosity=0, autoclobber=True)


def build_study(trials: int) -> Any:
    """A live 2AFC study with real JPEG/WebP stimuli of ``CROP``×``CROP`` crops."""
    from studykit import make_study, synthetic_set

    from perceptlab.codecs.generation import run_job
    from perceptlab.studies import stimuli
    from perceptlab.studies.models import Study

    study = make_study(
        "2afc", build=False, crop_width=CROP, crop_height=CROP, trials_per_session=trials
    )
    images = -(-trials // PAIRS_PER_IMAGE)
    study.image_set = synthetic_set(images, width=768, height=512)
    study.save(update_fields=["image_set"])
    for job in stimuli.plan_generation(study=study):
        run_job(job.pk)
    stimuli.build_stimuli(study=study)
    study.state = Study.State.LIVE
    study.save(update_fields=["state"])
    return study


def answer_trials(page: Any, count: int, think_ms: int) -> list[tuple[str, float]]:
    """Answer ``count`` trials with "a", each ``think_ms`` after it is ready (a rater looks
    first: the app prefetches the trial after next meanwhile); the page's perceptlab marks,
    read before the page navigates away."""
    from raterbot import rate

    for _ in range(count):
        page.wait_for_selector('[data-testid=rater][data-status="ready"]')
        page.wait_for_timeout(think_ms)
        rate(page, ["a"], limit=1)
    return [(name, float(at)) for name, at in page.evaluate(MARKS)]


def swap_times(marks: list[tuple[str, float]]) -> list[float]:
    """For each answer, ms until the next draw (answers with no draw after them are dropped)."""
    swaps = []
    for index, (name, at) in enumerate(marks):
        if name != "perceptlab:answer":
            continue
        drawn = next((t for n, t in marks[index + 1 :] if n == "perceptlab:drawn"), None)
        if drawn is not None:
            swaps.append(drawn - at)
    return swaps


def run(trials: int, think_ms: int, headed: bool) -> tuple[list[float], float]:
    from playwright.sync_api import sync_playwright
    from pytest_django.live_server_helper import LiveServer
    from raterbot import enter

    from perceptlab.studies.models import Session

    study = build_study(trials + 2)  # the session must not end: its page would navigate away
    server = LiveServer("127.0.0.1:0")
    try:
        with sync_playwright() as playwright:
            flags = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
            chromium = playwright.chromium.launch(
                executable_path=str(CHROMIUM), args=flags, headless=not headed
            )
            context = chromium.new_context(viewport={"width": 1400, "height": 900})
            context.set_default_timeout(30_000)
            page = context.new_page()
            enter(page, server, study)
            schedule = Session.objects.get(study=study).schedule
            marks = answer_trials(page, min(trials, len(schedule) - 1), think_ms)
            chromium.close()
    finally:
        server.stop()
    first = next(t for n, t in marks if n == "perceptlab:drawn")
    return swap_times(marks), first


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--think-ms", type=int, default=500, help="wait before each answer")
    parser.add_argument("--headed", action="store_true", help="show the browser window")
    args = parser.parse_args()
    if not CHROMIUM.exists():
        raise SystemExit(f"needs Debian's chromium at {CHROMIUM}: run scripts/browser.sh")
    with tempfile.TemporaryDirectory(prefix="perceptlab-bench-") as tmp:
        setup_django(Path(tmp))
        began = time.perf_counter()
        swaps, first = run(args.trials, args.think_ms, args.headed)
        elapsed = time.perf_counter() - began
    p50, p95 = np.percentile(swaps, [50, 95])
    print(
        f"rater swap: 2AFC, {CROP}×{CROP} crops, {len(swaps)} swaps, answers "
        f"{args.think_ms} ms after each trial is ready, {elapsed:.1f} s in all"
    )
    print(f"  swap (answer key → next trial drawn): p50 {p50:.1f} ms, p95 {p95:.1f} ms, "
          f"max {max(swaps):.1f} ms   (goal p95 ≤ {GOAL_SWAP_P95_MS:.0f} ms)")  # fmt: skip
    print(f"  first trial (navigation start → drawn): {first:.0f} ms   "
          f"(goal ≤ {GOAL_FIRST_MS:.0f} ms)")  # fmt: skip


if __name__ == "__main__":
    main()
