"""The exclusion policy outside the report: a bundle's sureal dataset holds the ratings the
analysis counted (so sureal or ``score`` on it give the bundle's scores), and ``score
--bundle`` re-analyses under another policy (``--exclude``, ``--max-gold-failure``,
``--max-inconsistency``, ``--lapse``)."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from evalkit import rated_study

from perceptlab.studies.models import Judgment, Study

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.filterwarnings("ignore:Degrees of freedom:RuntimeWarning"),
]


@pytest.fixture(autouse=True)
def small_bootstrap(settings: Any) -> None:
    settings.EVALUATION_RESAMPLES = 100


def _flag_too_fast(study: Study, count: int) -> int:
    chosen = list(
        Judgment.objects.filter(trial__session__study=study, trial__kind="test").order_by("id")[
            :count
        ]
    )
    for judgment in chosen:
        judgment.flags = ["too_fast"]
        judgment.save(update_fields=["flags"])
    return len(chosen)


def _bundle(admin_client: Any, study: Study, tmp_path: Path) -> Path:
    response = admin_client.get(reverse("evaluation:export", args=[study.pk, "bundle.zip"]))
    assert response.status_code == 200
    path = tmp_path / "bundle.zip"
    path.write_bytes(response.content)
    return path


def _score(**options: object) -> str:
    out = io.StringIO()
    call_command("score", stdout=out, **options)
    return out.getvalue()


def _ratings_in(dataset: dict[str, Any]) -> int:
    return sum(len(video["os"]) for video in dataset["dis_videos"])


def test_the_bundles_sureal_dataset_leaves_out_what_the_policy_excludes(
    admin_client: Any, tmp_path: Path
) -> None:
    study = rated_study("acr", images=2, raters=5, seed=31)
    tests = Judgment.objects.filter(trial__session__study=study, trial__kind="test").count()
    fast = _flag_too_fast(study, 6)
    path = _bundle(admin_client, study, tmp_path)
    dataset = json.loads(zipfile.ZipFile(path).read("sureal_dataset.json"))
    assert _ratings_in(dataset) == tests - fast
    sureal_file = tmp_path / "sureal_dataset.json"
    sureal_file.write_text(json.dumps(dataset))
    _score(ratings=sureal_file, kind="acr", out=tmp_path / "sureal.csv", resamples=100)
    ours = pd.read_csv(tmp_path / "sureal.csv", dtype={"stimulus": str}).set_index("stimulus")
    scores = pd.read_csv(io.BytesIO(zipfile.ZipFile(path).read("scores.csv")), dtype=str)
    stimulus = scores[(scores["level"] == "stimulus") & (scores["measure"] == "MOS")]
    theirs = stimulus.set_index("key")
    np.testing.assert_allclose(ours["mos"], theirs.loc[ours.index, "mos"].astype(float))
    assert ours["n"].sum() == tests - fast


def test_score_re_analyses_a_bundle_under_another_policy(admin_client: Any, tmp_path: Path) -> None:
    study = rated_study("acr", images=2, raters=4, seed=32)
    tests = Judgment.objects.filter(trial__session__study=study, trial__kind="test").count()
    fast = _flag_too_fast(study, 5)
    path = _bundle(admin_client, study, tmp_path)
    same = _score(bundle=path, out=tmp_path / "same.csv")
    assert "reproduces scores.csv exactly" in same
    text = _score(bundle=path, out=tmp_path / "all.csv", exclude="none")
    assert "exclusion policy: raters screened out while rating" in text
    assert "not compared with the bundle's scores.csv" in text
    everything = pd.read_csv(tmp_path / "all.csv")
    condition = everything[(everything["level"] == "condition") & (everything["measure"] == "MOS")]
    assert condition["n"].sum() == tests
    default = pd.read_csv(tmp_path / "same.csv")
    default_condition = default[(default["level"] == "condition") & (default["measure"] == "MOS")]
    assert default_condition["n"].sum() == tests - fast
    strict = _score(bundle=path, out=tmp_path / "strict.csv", exclude="too_fast,pane_cut")
    assert "removed: flagged too_fast: 5 judgments" in strict


def test_policy_options_are_checked(admin_client: Any, tmp_path: Path) -> None:
    study = rated_study("acr", images=1, raters=2, seed=33)
    path = _bundle(admin_client, study, tmp_path)
    with pytest.raises(CommandError, match=r"unknown flag.*bogus.*valid: too_fast"):
        _score(bundle=path, out=tmp_path / "x.csv", exclude="bogus")
    with pytest.raises(CommandError, match=r"max_gold_failure must lie in \[0, 1\)"):
        _score(bundle=path, out=tmp_path / "x.csv", max_gold_failure=1.5)
    ratings = tmp_path / "r.csv"
    ratings.write_text("rater,stimulus,score\nr1,a,3\nr2,a,4\n")
    with pytest.raises(CommandError, match="re-analyse a study's --bundle"):
        _score(ratings=ratings, kind="acr", out=tmp_path / "x.csv", exclude="too_fast")
