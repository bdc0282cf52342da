"""Li–Bampis subject model and the P.910 Annex E solver against sureal on real datasets."""

from __future__ import annotations

import contextlib
import functools
import io
import types

import numpy as np
import pandas as pd
import pytest
from support import data
from sureal import P910AnnexEModel
from sureal.dataset_reader import RawDatasetReader
from sureal.subjective_model import (
    MaximumLikelihoodEstimationModel,
    MaximumLikelihoodEstimationModelContentOblivious,
)

from perceptlab.evaluation.stats.common import StatsInputError
from perceptlab.evaluation.stats.ratings_io import read_ratings_csv, to_sureal_dataset_json
from perceptlab.evaluation.stats.subject_model import mle_subject_model

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning:sureal.*")

SUREAL_MODELS = {
    "content_oblivious": MaximumLikelihoodEstimationModelContentOblivious,
    "p910": P910AnnexEModel,
    "full": MaximumLikelihoodEstimationModel,
}


@functools.cache
def ratings(name: str) -> pd.DataFrame:
    return read_ratings_csv(data("sureal", f"{name}.csv"))


def run_sureal(model: type, frame: pd.DataFrame) -> dict:  # type: ignore[type-arg]
    dataset = to_sureal_dataset_json(frame, dataset_name="test")
    with contextlib.redirect_stdout(io.StringIO()):
        return model(RawDatasetReader(types.SimpleNamespace(**dataset))).run_modeling()  # type: ignore[no-any-return]


def assert_matches_sureal(name: str, variant: str, tolerance: float) -> None:
    frame = ratings(name)
    ours = mle_subject_model(frame, variant=variant)  # type: ignore[arg-type]
    theirs = run_sureal(SUREAL_MODELS[variant], frame)
    assert list(ours.raters["rater"]) == theirs["observers"]
    checks = [
        (ours.scores["quality"], theirs["quality_scores"]),
        (ours.scores["std"], theirs["quality_scores_std"]),
        (ours.raters["bias"], theirs["observer_bias"]),
        (ours.raters["bias_std"], theirs["observer_bias_std"]),
        (ours.raters["inconsistency"], theirs["observer_inconsistency"]),
        (
            ours.raters["inconsistency"] - ours.raters["inconsistency_ci95_low"],
            theirs["observer_inconsistency_ci95"][0],
        ),
        (
            ours.raters["inconsistency_ci95_high"] - ours.raters["inconsistency"],
            theirs["observer_inconsistency_ci95"][1],
        ),
    ]
    for mine, reference in checks:
        np.testing.assert_allclose(mine, reference, rtol=0, atol=tolerance)
    n_ratings = len(frame)
    assert ours.log_likelihood / n_ratings == pytest.approx(theirs["loglikelihood"], abs=tolerance)
    if variant == "full":
        np.testing.assert_allclose(
            ours.contents["ambiguity"], theirs["content_ambiguity"], rtol=0, atol=tolerance
        )


@pytest.mark.parametrize("name", ["NFLX_dataset_public_raw", "VQEGHD3_dataset_raw"])
def test_content_oblivious_mle_matches_sureal_mle_co(name: str) -> None:
    assert_matches_sureal(name, "content_oblivious", 1e-4)


@pytest.mark.parametrize("name", ["NFLX_dataset_public_raw", "VQEGHD3_dataset_raw"])
def test_p910_annex_e_matches_sureal_p910(name: str) -> None:
    assert_matches_sureal(name, "p910", 1e-6)


def test_full_model_with_content_ambiguity_matches_sureal_mle() -> None:
    assert_matches_sureal("VQEGHD3_dataset_raw", "full", 1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["content_oblivious", "full"])
def test_the_partial_agh_design_matches_sureal_too(variant: str) -> None:
    assert_matches_sureal("quality_variation_2017_agh_tv", variant, 1e-4)


def test_content_oblivious_and_p910_share_point_estimates_but_not_intervals() -> None:
    frame = ratings("NFLX_dataset_public_raw")
    co = mle_subject_model(frame, variant="content_oblivious")
    p910 = mle_subject_model(frame, variant="p910")
    np.testing.assert_allclose(co.scores["quality"], p910.scores["quality"], atol=1e-6)
    assert not np.allclose(co.scores["std"], p910.scores["std"], rtol=1e-3)
    assert co.model.name == "MLE_CO" and p910.model.name == "P910"


def test_it_recovers_simulated_bias_and_inconsistency() -> None:
    rng = np.random.default_rng(0)
    quality = rng.uniform(1, 5, 120)
    bias = rng.normal(0, 0.4, 30)
    bias -= bias.mean()
    spread = rng.uniform(0.2, 1.0, 30)
    rows = [
        (f"r{s:02}", f"e{e:03}", quality[e] + bias[s] + spread[s] * rng.normal())
        for e in range(120)
        for s in range(30)
        if rng.random() < 0.7  # a partial design
    ]
    frame = pd.DataFrame(rows, columns=["rater", "stimulus", "score"])
    fit = mle_subject_model(frame)
    assert fit.converged
    bias_error = np.abs(fit.raters["bias"].to_numpy() - bias)
    assert (bias_error < 4 * fit.raters["bias_std"]).all()
    assert np.corrcoef(fit.raters["inconsistency"], spread)[0, 1] > 0.95
    quality_error = np.abs(fit.scores["quality"].to_numpy() - quality)
    assert (quality_error < 4 * fit.scores["std"]).all()
    inside = (fit.scores["ci95_low"] <= quality) & (quality <= fit.scores["ci95_high"])
    assert 0.9 < inside.mean()
    assert fit.raters["bias"].mean() == pytest.approx(0.0, abs=1e-12)


def test_repeated_ratings_count_as_extra_observations() -> None:
    frame = ratings("VQEGHD3_dataset_raw")
    doubled = pd.concat([frame, frame], ignore_index=True)
    once = mle_subject_model(frame)
    twice = mle_subject_model(doubled)
    np.testing.assert_allclose(twice.scores["quality"], once.scores["quality"], atol=1e-6)
    np.testing.assert_allclose(twice.scores["std"], once.scores["std"] / np.sqrt(2), rtol=1e-4)
    assert (twice.raters["n"] == 2 * once.raters["n"]).all()


def test_the_full_model_needs_a_content_column_and_unknown_variants_are_refused() -> None:
    frame = ratings("NFLX_dataset_public_raw").drop(columns=["content"])
    with pytest.raises(StatsInputError, match="needs a 'content' column"):
        mle_subject_model(frame, variant="full")
    with pytest.raises(StatsInputError, match="content_oblivious, full, p910"):
        mle_subject_model(frame, variant="mle")  # type: ignore[arg-type]
