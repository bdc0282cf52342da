"""Benchmark: a study's report page, stored analysis against recomputing it per view.

Builds, in a fresh SQLite database under a temporary folder, an ACR study of synthetic
images with real JPEG/WebP stimuli (``tests/studykit.py``) and ``--judgments`` ratings
(100,000 by default: ``--raters`` completed sessions, each rating every item once; score
= round(true quality + rater bias + noise), clipped to 1–5), written in bulk. Then:

1. the first analysis: the background task's body (``stored.compute``) on the new
   study, with the installation's bootstrap size (``--resamples``, default the
   setting's 2,000); goal ≤ 30 s;
2. the report page as a researcher opens it (``GET /reports/<id>/`` through Django's
   test client, logged in), ``--views`` times once the analysis is stored: median and
   worst; goal ≤ 1 s;
3. the recompute the page did before analyses were stored (frames, analysis, rendered
   sections), timed once in the same process: the baseline.

Printed: the three times, the page's ratio to the recompute, and the goals.

    .venv/bin/python bench/report.py [--judgments 100000] [--raters 1000] [--views 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

GOAL_FIRST_S = 30.0
GOAL_PAGE_S = 1.0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--judgments", type=int, default=100_000)
    parser.add_argument("--raters", type=int, default=1000)
    parser.add_argument("--views", type=int, default=5)
    parser.add_argument("--resamples", type=int, default=0, help="0: the setting's default")
    return parser.parse_args()


def setup(workdir: Path, resamples: int) -> None:
    os.environ["PERCEPTLAB_VAR_DIR"] = str(workdir)
    os.environ["DATABASE_URL"] = f"sqlite:///{workdir / 'report.sqlite3'}"
    os.environ["PERCEPTLAB_TASKS"] = "dummy"  # this process computes, as the worker would
    if resamples:
        os.environ["PERCEPTLAB_EVAL_RESAMPLES"] = str(resamples)
    os.environ["DJANGO_SETTINGS_MODULE"] = "perceptlab.settings"
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def build(judgments: int, raters: int) -> int:
    """The study's id, with ``judgments`` ratings by ``raters`` raters, bulk-written."""
    import numpy as np
    from django.db import transaction
    from django.utils import timezone
    from studykit import make_study

    from perceptlab.studies.models import Item, Judgment, Session, Trial

    per_rater = max(1, judgments // raters)
    images = max(1, -(-per_rater // 4))  # four conditions per image: jpeg/webp × 2 bpp
    study = make_study("acr", images=images, trials_per_session=per_rater)
    items = list(Item.objects.filter(study=study, kind=Item.Kind.TEST).select_related("a"))
    rng = np.random.default_rng(0)
    quality = {item.pk: rng.uniform(1.5, 4.5) for item in items}
    now = timezone.now()
    with transaction.atomic():
        sessions = Session.objects.bulk_create(
            Session(
                study=study,
                participant_id=f"bench-{index}",
                state=Session.State.COMPLETED,
                schedule=["test"] * min(per_rater, len(items)),
                started=now,
                finished=now,
            )
            for index in range(raters)
        )
        trials = Trial.objects.bulk_create(
            Trial(session=session, position=position, kind=Trial.Kind.TEST, item=item)
            for session in sessions
            for position, item in enumerate(items[:per_rater])
        )
        bias = {s.pk: rng.normal(0, 0.35) for s in sessions}
        noise = rng.normal(0, 0.6, size=len(trials))
        Judgment.objects.bulk_create(
            Judgment(
                trial=trial,
                key=uuid.uuid4(),
                score=float(
                    np.clip(round(quality[trial.item_id] + bias[trial.session_id] + e), 1, 5)
                ),
                flips=1,
                view_ms=4000,
                server_ms=4100,
                answered=now,
            )
            for trial, e in zip(trials, noise, strict=True)
        )
    return int(study.pk)


def _score(value: float) -> float:
    return float(min(5, max(1, round(value))))


def main() -> None:
    args = parse_args()
    with tempfile.TemporaryDirectory(prefix="perceptlab-report-") as tmp:
        setup(Path(tmp), args.resamples)
        from django.conf import settings
        from django.contrib.auth import get_user_model
        from django.test import Client

        from perceptlab.evaluation import stored
        from perceptlab.evaluation.reports import methods_html, report_body
        from perceptlab.evaluation.study_analysis import analyse_study, config_for, report_data
        from perceptlab.studies.models import Judgment, Study

        start = time.perf_counter()
        study = Study.objects.get(pk=build(args.judgments, args.raters))
        n = Judgment.objects.filter(trial__session__study=study).count()
        print(
            f"study: {n:,} judgments by {args.raters:,} raters, built in "
            f"{time.perf_counter() - start:.1f} s; {settings.EVALUATION_RESAMPLES} resamples"
        )

        config = config_for(study)
        row = stored.request(study, config)
        start = time.perf_counter()
        state = stored.compute(row.pk)
        first = time.perf_counter() - start
        print(f"first analysis (the task): {first:.1f} s, {state}  (goal ≤ {GOAL_FIRST_S:.0f} s)")

        client = Client()
        client.force_login(get_user_model().objects.create_superuser("bench", "", "x" * 12))
        url = f"/reports/{study.pk}/"
        pages = []
        for _ in range(args.views):
            start = time.perf_counter()
            response = client.get(url)
            pages.append(time.perf_counter() - start)
            assert response.status_code == 200 and b"report-section" in response.content
        page = statistics.median(pages)
        print(
            f"report page, stored: median {page * 1000:.0f} ms, worst "
            f"{max(pages) * 1000:.0f} ms over {args.views} views  (goal ≤ {GOAL_PAGE_S:.0f} s)"
        )

        start = time.perf_counter()
        _, analysis = analyse_study(study, config)
        data = report_data(study, analysis)
        report_body(data)
        methods_html(data)
        recompute = time.perf_counter() - start
        print(f"recompute per view (before): {recompute:.1f} s")
        print(f"ratio page ÷ recompute: {page / recompute:.4f}")


if __name__ == "__main__":
    main()
