"""pwcmp's distance prior (Perez-Ortiz & Mantiuk 2017) in the Bradley–Terry and Thurstone scales.

The reference is pw_scale's objective written out pair by pair from its definition (ordered
pairs, probabilities rather than logarithms, unanimous pairs moved one answer toward the
middle) and maximised by scipy; the data are real: pwcmp's own TMO study with its near-unbeaten
irawan05 made unbeaten (its single loss removed), and the complete HiFiC user study. Then
through the study analysis, the report, the bundle and ``manage.py score``.
"""

from __future__ import annotations

import functools
import io
import zipfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from evalkit import rated_study
from scipy.optimize import minimize
from scipy.special import expit
from scipy.stats import norm
from support import data

from perceptlab.evaluation import exports
from perceptlab.evaluation.reports import ReportData, methods_html
from perceptlab.evaluation.stats.bootstrap import rater_resamples
from perceptlab.evaluation.stats.common import StatsInputError
from perceptlab.evaluation.stats.pairwise import (
    ELO_PER_THETA,
    BTResult,
    ThurstoneResult,
    bradley_terry,
    rater_bootstrap,
    scale_pairwise,
    scale_prior,
    thurstone_case_v,
    trial_groups,
    win_matrix,
)
from perceptlab.evaluation.stats.pairwise_io import read_pairwise_csv
from perceptlab.evaluation.study_analysis import analyse_study, config_for, report_data
from perceptlab.studies.models import Judgment, Study

CDF: dict[str, Callable[[np.ndarray], np.ndarray]] = {"logistic": expit, "probit": norm.cdf}


@functools.cache
def trials(name: str) -> pd.DataFrame:
    return read_pairwise_csv(data("pairwise", f"{name}.csv"))


def irawan05_lost(frame: pd.DataFrame) -> pd.Series:
    a_lost = (frame["a"] == "irawan05") & (frame["outcome"] == 0.0)
    return a_lost | ((frame["b"] == "irawan05") & (frame["outcome"] == 1.0))


@functools.cache
def exhibition(*, unbeaten: bool) -> pd.DataFrame:
    """The "exhibition" scene of pwcmp's TMO study; ``unbeaten``: without the one trial in
    which irawan05 lost (it won the other 59)."""
    frame = trials("pwcmp_tmo_video")
    frame = frame.loc[frame["group"] == "exhibition"].drop(columns=["group"])
    if unbeaten:
        frame = frame.loc[~irawan05_lost(frame)]
    return frame.reset_index(drop=True)


# -- the reference: pw_scale's objective, pair by pair -------------------------------------


def pw_scale_objective(wins: np.ndarray, theta: np.ndarray, link: str) -> float:
    """Σ over ordered compared pairs (i, j) of w_ij·log F(θ_i − θ_j) + log(π_ij + 0.1), with
    π_ij = Σ_m aux[ij, m] / Σ_c aux[c, m], aux[c, m] = p_c^k_m (1 − p_c)^(n_m − k_m) over the
    same ordered pairs, and a unanimous pair's k moved one answer toward the middle."""
    n = len(theta)
    pairs = [(i, j) for i in range(n) for j in range(n) if i != j and wins[i, j] + wins[j, i]]
    first, second = (np.array(side) for side in zip(*pairs, strict=True))
    p = CDF[link](theta[first] - theta[second])
    total = wins[first, second] + wins[second, first]
    k = wins[first, second].copy()
    k[wins[second, first] == 0] = total[wins[second, first] == 0] - 1
    k[wins[first, second] == 0] = 1
    aux = p[:, None] ** k[None, :] * (1 - p[:, None]) ** (total - k)[None, :]
    prior = (aux / aux.sum(axis=0)).sum(axis=1)
    return float(np.sum(wins[first, second] * np.log(p)) + np.sum(np.log(prior + 0.1)))


def reference_fit(frame: pd.DataFrame, link: str) -> tuple[np.ndarray, np.ndarray]:
    """scipy's BFGS on :func:`pw_scale_objective` (θ centred) and the Wald SEs from its
    finite-difference Hessian (item 0 pinned, then centred, as in BradleyTerry2)."""
    wins = win_matrix(frame).to_numpy()
    n = len(wins)

    def negative(x: np.ndarray) -> float:
        return -pw_scale_objective(wins, np.append(x, -x.sum()), link)

    found = minimize(negative, np.zeros(n - 1), method="BFGS", options={"gtol": 1e-9})
    theta = np.append(found.x, -found.x.sum())
    theta -= theta.mean()
    h, hessian = 1e-4, np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            values = []
            for si, sj in [(1, 1), (1, -1), (-1, 1), (-1, -1)]:
                shifted = theta.copy()
                shifted[i] += si * h
                shifted[j] += sj * h
                values.append(pw_scale_objective(wins, shifted, link))
            hessian[i, j] = (values[0] - values[1] - values[2] + values[3]) / (4 * h * h)
    sigma = np.zeros((n, n))
    sigma[1:, 1:] = np.linalg.inv(-hessian[1:, 1:])
    centre = np.eye(n) - np.ones((n, n)) / n
    return theta, np.sqrt(np.diag(centre @ sigma @ centre))


Fit = Callable[..., BTResult | ThurstoneResult]
FITS: dict[str, tuple[Fit, str]] = {
    "logistic": (bradley_terry, "theta"),
    "probit": (thurstone_case_v, "v"),
}


@pytest.mark.parametrize("link", ["logistic", "probit"])
@pytest.mark.parametrize("unbeaten", [False, True], ids=["as-published", "irawan05-unbeaten"])
def test_the_fit_maximises_pw_scales_objective_written_out_pair_by_pair(
    link: str, unbeaten: bool
) -> None:
    frame = exhibition(unbeaten=unbeaten)
    fit, column = FITS[link]
    result = fit(frame)
    theta, se = reference_fit(frame, link)
    np.testing.assert_allclose(result.scores[column], theta, rtol=0, atol=1e-5)
    np.testing.assert_allclose(result.scores["se"], se, rtol=1e-3)
    wins = win_matrix(frame).to_numpy()
    objective = pw_scale_objective(wins, result.scores[column].to_numpy(), link)
    assert result.log_likelihood["all"] == pytest.approx(objective, abs=1e-9)
    assert (result.prior, result.ridge) == ("gaussian", 0.0)


# -- what the prior does -------------------------------------------------------------------


def test_an_unbeaten_condition_gets_a_finite_scale_and_is_ranked_first() -> None:
    frame = exhibition(unbeaten=True)
    assert irawan05_lost(frame).sum() == 0 and len(frame) == 245
    with pytest.raises(StatsInputError, match=r"never lost to the other items: \{irawan05\}"):
        bradley_terry(frame, prior="none")
    bt = by_condition(bradley_terry(frame).scores)
    assert (bt["wins"]["irawan05"], bt["losses"]["irawan05"]) == (59.0, 0.0)
    # golden numbers of this implementation (equal to the reference above)
    theta, se = bt["theta"]["irawan05"], bt["se"]["irawan05"]
    assert (theta, se) == (pytest.approx(3.34558, abs=1e-4), pytest.approx(0.49196, abs=1e-4))
    runner_up = max(v for c, v in bt["theta"].items() if c != "irawan05")
    assert theta - runner_up > 2 * se  # first, well clear of the rest
    jod = by_condition(thurstone_case_v(frame).scores)
    assert jod["jod"]["irawan05"] == pytest.approx(2.70973, abs=1e-4)
    assert max(jod["jod"], key=jod["jod"].__getitem__) == "irawan05"
    assert np.isfinite(list(jod["jod_se"].values())).all()
    # with its one loss back, the MLE exists; the prior's unbeaten estimate lies below it
    mle = by_condition(bradley_terry(exhibition(unbeaten=False), prior="none").scores)
    assert runner_up < theta < mle["theta"]["irawan05"]


def by_condition(scores: pd.DataFrame) -> dict[str, dict[object, float]]:
    """Each numeric column as {condition: value}."""
    numbers = scores.set_index("condition").select_dtypes("number")
    return {
        str(c): dict(zip(numbers.index, numbers[c].to_numpy(float), strict=True)) for c in numbers
    }


# (dataset, group, largest shift of θ or v, largest relative change of a standard error)
COMPLETE = [
    ("hific_userstudy", "all", 0.015, 0.04),
    ("sureal_lukas_sharpening", "barba", 0.04, 0.12),
]


@pytest.mark.parametrize(("name", "group", "largest", "se_change"), COMPLETE)
def test_on_complete_well_connected_data_the_prior_stays_within_a_small_tolerance_of_the_mle(
    name: str, group: str, largest: float, se_change: float
) -> None:
    """HiFiC: 9 methods, all 36 pairs, 5 218 trials; sureal "barba": all 28 pairs, 16 trials
    each, none unanimous. No θ (or v) moves by a sixth of its standard error."""
    frame = trials(name)
    for fit, column in FITS.values():
        prior, mle = fit(frame).scores, fit(frame, prior="none").scores
        rows = (prior["group"] == group).to_numpy()
        shift = (prior[column] - mle[column]).abs().to_numpy()[rows]
        se = mle["se"].to_numpy()[rows]
        assert np.all(shift < se / 6) and shift.max() < largest, (column, shift / se)
        order = [t.loc[rows].sort_values(column)["condition"].tolist() for t in (prior, mle)]
        assert order[0] == order[1]
        np.testing.assert_allclose(prior["se"].to_numpy()[rows], se, rtol=se_change)


def resampled(frame: pd.DataFrame, drawn: list[object]) -> pd.DataFrame:
    by_rater: dict[object, pd.DataFrame] = dict(iter(frame.groupby("rater", sort=False)))
    return pd.concat([by_rater[r] for r in drawn], ignore_index=True)


def test_the_rater_bootstrap_refits_every_resample_with_the_prior() -> None:
    frame = exhibition(unbeaten=True)
    _, raters = trial_groups(frame)
    boot = rater_bootstrap(frame, n_resamples=30, seed=7)
    assert boot.dropped == {"all": 0} and (boot.prior, boot.ridge) == ("gaussian", 0.0)
    drawn = rater_resamples(len(raters), 30, np.random.default_rng(7))
    refits = [resampled(frame, [raters[i] for i in drawn[b]]) for b in range(30)]
    for b, refit in enumerate(refits):
        expected = bradley_terry(refit).scores.set_index("condition")["elo"]
        ours = boot.elo_replicates[b].reindex(expected.index).to_numpy()
        np.testing.assert_allclose(ours, expected.to_numpy(), atol=1e-6 * ELO_PER_THETA)
    jods = np.array([thurstone_case_v(refit).scores["jod"].to_numpy() for refit in refits])
    low, high = np.percentile(jods, [2.5, 97.5], axis=0)
    np.testing.assert_allclose(boot.intervals["jod_low"], low, atol=1e-5)
    np.testing.assert_allclose(boot.intervals["jod_high"], high, atol=1e-5)
    intervals = boot.intervals.set_index("condition")
    top = intervals.loc["irawan05"]
    assert np.isfinite(intervals.select_dtypes("number").to_numpy()).all()
    assert top["bt_elo_low"] > intervals.drop(index="irawan05")["bt_elo_low"].max()


def test_a_total_order_seen_once_per_pair_is_a_clear_error() -> None:
    """A pair compared once has a flat kernel (p + (1 − p) = 1): nothing bounds x > y > z."""
    frame = pd.DataFrame(
        {"rater": "r", "a": ["x", "y", "x"], "b": ["y", "z", "z"], "outcome": [1.0, 1.0, 1.0]}
    )
    for fit in (bradley_terry, thurstone_case_v):
        with pytest.raises(StatsInputError, match=r"did not converge .* prior='ridge'"):
            fit(frame)
    ridged = bradley_terry(frame, prior="ridge").scores.set_index("condition")["theta"]
    assert ridged.idxmax() == "x" and np.isfinite(ridged).all()


def test_the_prior_option_is_checked_and_recorded() -> None:
    with pytest.raises(StatsInputError, match="'laplace' is not one of gaussian, ridge, none"):
        scale_prior("laplace")
    with pytest.raises(StatsInputError, match="applies to prior='ridge' only"):
        bradley_terry(exhibition(unbeaten=True), ridge=0.1)
    with pytest.raises(StatsInputError, match=r"needs a finite ridge > 0, got 0\.0"):
        thurstone_case_v(exhibition(unbeaten=True), prior="ridge", ridge=0.0)
    ridged = bradley_terry(exhibition(unbeaten=True), prior="ridge")
    assert (ridged.prior, ridged.ridge) == ("ridge", 0.01)
    # λ = 0.01 is a much weaker pull on an unbeaten item than the distance prior
    assert ridged.scores.set_index("condition").loc["irawan05", "theta"] == pytest.approx(
        6.349, abs=1e-3
    )
    frame = exhibition(unbeaten=True)
    boot = rater_bootstrap(frame, n_resamples=5, thurstone=False, prior="ridge")
    with pytest.raises(StatsInputError, match="bootstrap was run with prior='ridge'"):
        scale_pairwise(frame, n_orderings=2, bootstrap=boot)


# -- the study analysis, its report and its bundle -----------------------------------------


def make_unbeaten(study: Study, condition: str) -> int:
    """Every judgment of a trial showing ``condition`` picks it; returns how many changed."""
    changed = 0
    judgments = Judgment.objects.filter(trial__session__study=study).select_related(
        "trial__item__a__reconstruction", "trial__item__b__reconstruction"
    )
    for judgment in judgments:
        shown_a, shown_b = judgment.trial.shown_as()
        for choice, stimulus in (("a", shown_a), ("b", shown_b)):
            if stimulus is None or stimulus.reconstruction is None:
                continue
            r = stimulus.reconstruction
            if f"{r.codec}@{r.target_bpp:g}" == condition:
                changed += judgment.chosen_id != stimulus.pk
                Judgment.objects.filter(pk=judgment.pk).update(choice=choice, chosen=stimulus)
    return changed


@pytest.fixture
def unbeaten_study() -> Study:
    study = rated_study(
        "2afc", images=2, raters=8, seed=2, judgments_per_item=8, trials_per_session=12
    )
    assert make_unbeaten(study, "jpeg@0.5") > 0
    return study


@pytest.mark.django_db
def test_a_study_whose_condition_never_lost_gets_finite_scores_with_intervals(
    unbeaten_study: Study,
) -> None:
    config = config_for(unbeaten_study)
    assert config.pairwise_prior == "gaussian"
    _, analysis = analyse_study(unbeaten_study, config)
    assert analysis.win_matrix is not None
    assert analysis.win_matrix.loc[:, "jpeg@0.5"].sum() == 0  # it never lost
    conditions = analysis.scores.loc[analysis.scores["level"] == "condition"]
    values = conditions[["bt_elo", "thurstone", "ci95_low", "ci95_high"]].to_numpy(float)
    assert np.isfinite(values).all() and len(conditions) == 4
    assert conditions.iloc[0]["condition"] == "jpeg@0.5"  # sorted best first
    assert (conditions["ci95_low"] <= conditions["bt_elo"]).all()
    assert (conditions["bt_elo"] <= conditions["ci95_high"]).all()
    per_image = analysis.scores.loc[analysis.scores["level"] == "image"]
    assert (per_image["note"] == "").all() and np.isfinite(per_image["bt_elo"]).all()
    assert np.isfinite(analysis.curves[["quality", "low", "high"]].to_numpy(float)).all()
    assert "pwcmp's distance prior" in analysis.quality_label
    methods = methods_html(report_data(unbeaten_study, analysis))
    assert "fitted with pwcmp&#x27;s distance prior" in methods
    with pytest.raises(StatsInputError, match=r"never lost .*\{jpeg@0.5\}.*prior='gaussian'"):
        analyse_study(unbeaten_study, replace(config, pairwise_prior="none"))


@pytest.mark.django_db
def test_its_bundle_holds_the_scores_and_reopens_into_the_same_numbers(  # type: ignore[no-untyped-def]
    unbeaten_study: Study, admin_client, tmp_path: Path
) -> None:
    url = reverse("evaluation:export", args=[unbeaten_study.pk, "bundle.zip"])
    response = admin_client.get(url)
    assert response.status_code == 200
    path = tmp_path / "bundle.zip"
    path.write_bytes(response.content)
    assert "scores.csv" in zipfile.ZipFile(path).namelist()
    bundle = exports.open_bundle(path)
    assert bundle.manifest["analysis"]["pairwise_prior"] == "gaussian"
    scores = bundle.scores.loc[bundle.scores["level"] == "condition"].set_index("condition")
    assert np.isfinite(
        scores.loc["jpeg@0.5", ["bt_elo", "ci95_low", "ci95_high"]].astype(float)
    ).all()
    again = exports.reanalyse(bundle)
    assert exports.csv_bytes(exports.read_csv_bytes(exports.csv_bytes(again.scores))) == (
        exports.csv_bytes(bundle.scores)
    )


def test_a_bundle_from_before_the_option_reopens_without_a_prior() -> None:
    empty = pd.DataFrame()
    old = exports.Bundle({"analysis": {"method": "2afc"}}, empty, empty, empty, empty)
    assert old.config.pairwise_prior == "none"
    new = {"analysis": {"method": "2afc", "pairwise_prior": "gaussian"}}
    assert exports.Bundle(new, empty, empty, empty, empty).config.pairwise_prior == "gaussian"


@pytest.mark.parametrize(
    ("prior", "ridge", "says"),
    [
        ("gaussian", 0.0, "fitted with pwcmp&#x27;s distance prior (Perez-Ortiz &amp; Mantiuk"),
        ("ridge", 0.05, "ridge prior ½·λ·Σθ² (λ = 0.05)"),
        ("none", 0.0, "plain maximum likelihood without a prior"),
    ],
)
def test_the_methods_footer_says_which_prior_and_why(prior: str, ridge: float, says: str) -> None:
    data = ReportData(
        title="t", method="2afc", generated_at="", pairwise_prior=prior, pairwise_ridge=ridge
    )
    assert says in methods_html(data)
    assert "Pairwise scale" not in methods_html(
        ReportData(title="t", method="acr", generated_at="")
    )


# -- manage.py score -----------------------------------------------------------------------


def score(**options: object) -> str:
    out = io.StringIO()
    call_command("score", stdout=out, **options)
    return out.getvalue()


@pytest.fixture
def unbeaten_csv(tmp_path: Path) -> Path:
    """pwcmp's TMO study (five scenes, trials layout) without irawan05's one loss."""
    raw = pd.read_csv(data("pairwise", "pwcmp_tmo_video.csv"))
    lost = (raw["group"] == "exhibition") & (raw["loser"] == "irawan05")
    assert lost.sum() == 1
    path = tmp_path / "tmo_unbeaten.csv"
    raw.loc[~lost].to_csv(path, index=False)
    return path


def test_score_scales_an_unbeaten_condition_with_the_default_prior(
    unbeaten_csv: Path, tmp_path: Path
) -> None:
    out = tmp_path / "scores.csv"
    text = score(ratings=unbeaten_csv, kind="pairwise", out=out, resamples=100, orderings=200)
    assert "scale prior: gaussian (pwcmp's distance prior" in text
    table = pd.read_csv(out)
    assert table["group"].nunique() == 5
    assert np.isfinite(table[["bt_elo", "thurstone", "ci95_low", "ci95_high"]].to_numpy()).all()
    scene = table.loc[table["group"] == "exhibition"]
    assert scene.iloc[0]["condition"] == "irawan05"
    assert scene.iloc[0]["bt_theta"] == pytest.approx(3.34558, abs=1e-4)  # as bradley_terry
    assert scene.iloc[0]["ci95_low"] > scene.iloc[1]["bt_elo"]


def test_score_prior_none_keeps_the_clear_error_and_ridge_takes_its_lambda(
    unbeaten_csv: Path, tmp_path: Path
) -> None:
    out = tmp_path / "scores.csv"
    common = {"ratings": unbeaten_csv, "kind": "pairwise", "out": out, "resamples": 20}
    with pytest.raises(CommandError, match=r"\{irawan05\}.*prior='gaussian'"):
        score(prior="none", orderings=20, **common)
    text = score(prior="ridge", ridge=0.1, orderings=20, **common)
    assert "scale prior: ridge, ½·λ·Σθ² with λ = 0.1" in text
    table = pd.read_csv(out).set_index(["group", "condition"])
    fitted = bradley_terry(read_pairwise_csv(unbeaten_csv), prior="ridge", ridge=0.1).scores
    expected = fitted.set_index(["group", "condition"])["elo"]
    np.testing.assert_allclose(table.loc[expected.index, "bt_elo"], expected, atol=1e-6)
    with pytest.raises(CommandError, match=r"--ridge 0\.1 applies to --prior ridge only"):
        score(ridge=0.1, orderings=20, **common)
    with pytest.raises(CommandError, match="--prior and --ridge apply to pairwise trials"):
        score(ratings=data("sureal", "NFLX_dataset_public_raw.csv"),
              kind="acr", prior="none", out=out)  # fmt: skip
