"""Rater-aware quality estimates: the Li–Bampis subject model and the P.910 Annex E solver.

Model (Li & Bampis, "Recover subjective quality scores from noisy measurements", DCC 2017;
ITU-T P.910 (11/21) Annex E; ITU-T P.913 (06/21) §12.6):

    x_{e,s} = ψ_e + Δ_s + υ_s·ε  (+ a_c(e)·ε'),  ε, ε' ~ N(0, 1) independent,

ψ_e the quality of stimulus e, Δ_s the bias and υ_s the inconsistency of rater s, and in the
full model a_c the ambiguity of source content c. Repetitions and missing ratings are allowed
(every sum runs over the ratings present). Variants:

* ``"content_oblivious"`` (sureal ``MLE_CO``): maximum likelihood without a_c. Its likelihood
  equations are solved by the fixed-point ("projection") iteration of P.910 Annex E:
  υ_s = RMS residual of rater s, ψ_e = Σ_s w_s (x − Δ_s)/Σ_s w_s with w_s = 1/υ_s²,
  Δ_s = mean_e (x − ψ_e), until ‖Δψ‖₂ < 1e-8. Standard errors from the Fisher information:
  SE(ψ_e) = (Σ_{s∈e} 1/υ_s²)^(-1/2), SE(Δ_s) = (Σ_{e∈s} 1/υ_s²)^(-1/2).
* ``"p910"`` (sureal ``P910``): the same iteration with w_s = 1/(υ_s² + 1e-8), but
  SE(ψ_e) = v_e/√n_e with v_e the RMS residual of stimulus e, as Annex E prescribes.
* ``"full"`` (sureal ``MLE``): maximum likelihood with a_c, V_{e,s} = υ_s² + a_c(e)²,
  SE(ψ_e) = (Σ_s 1/V_{e,s})^(-1/2), SE(Δ_s) = (Σ_e 1/V_{e,s})^(-1/2); solved by Li & Bampis'
  damped Newton updates from the MOS (see ``_solve_full``). Caveat: this likelihood is
  unbounded (υ_s, a_c → 0 with ψ fitted to one rater) and, in a complete design, only
  υ_s² + a_c² is identified (adding δ to every a_c² and taking it from every υ_s² changes
  nothing). ψ, Δ and the SEs are well defined; the split between υ and a is the one the
  damped path from the MOS reaches, which is why the path is reproduced exactly rather than
  handed to a generic optimiser (which finds other splits or runs off to the unbounded edge).

Afterwards Δ is shifted to mean zero and ψ by the same amount (the likelihood cannot tell them
apart). Inconsistency interval: υ_s·√(n_s/χ²_{1−α/2}(n_s)) … υ_s·√(n_s/χ²_{α/2}(n_s)).
Normal quantile 1.95996 at 95 % as sureal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy.stats import chi2

from .common import ModelId, StatsInputError
from .mos import normal_quantile
from .ratings_io import check_ratings

SubjectModelVariant = Literal["content_oblivious", "full", "p910"]
MODELS = {
    "content_oblivious": ModelId("MLE_CO", "1.0"),
    "full": ModelId("MLE", "1.0"),
    "p910": ModelId("P910", "1.0"),
}
P910_EPSILON = 1e-8  # added to υ_s² in the weights by P.910 Annex E (and sureal)
TOLERANCE = 1e-8  # ‖Δψ‖₂ between iterations, as sureal
MAX_ITERATIONS = 10_000
REFRESH = 0.1  # share of each Newton step taken per iteration (Li & Bampis; sureal)

Array = NDArray[np.float64]


@dataclass(frozen=True)
class SubjectModelResult:
    """Estimates per stimulus (``scores``), per rater (``raters``) and per content (``contents``,
    full model only; empty otherwise), with the solver's iteration count and log-likelihood."""

    scores: pd.DataFrame
    raters: pd.DataFrame
    contents: pd.DataFrame
    iterations: int
    converged: bool
    log_likelihood: float
    model: ModelId


@dataclass(frozen=True)
class Design:
    """Ratings as parallel arrays: stimulus index ``e``, rater index ``s``, content ``c``."""

    stimuli: pd.Index
    raters: pd.Index
    contents: pd.Index
    e: NDArray[np.intp]
    s: NDArray[np.intp]
    c: NDArray[np.intp]
    x: Array

    def by_stimulus(self, values: Array) -> Array:
        return _group_sum(self.e, values, len(self.stimuli))

    def by_rater(self, values: Array) -> Array:
        return _group_sum(self.s, values, len(self.raters))

    def by_content(self, values: Array) -> Array:
        return _group_sum(self.c, values, len(self.contents))


def _group_sum(index: NDArray[np.intp], values: Array, size: int) -> Array:
    return np.bincount(index, weights=values, minlength=size).astype(np.float64, copy=False)


@dataclass
class Estimate:
    psi: Array
    bias: Array
    inconsistency: Array
    ambiguity: Array
    iterations: int
    converged: bool


def mle_subject_model(
    ratings: pd.DataFrame,
    *,
    variant: SubjectModelVariant = "content_oblivious",
    confidence: float = 0.95,
) -> SubjectModelResult:
    """Fit the subject model (see the module docstring) and return its estimates with intervals."""
    if variant not in MODELS:
        raise StatsInputError(f"variant must be one of {', '.join(MODELS)}, got {variant!r}")
    if not 0.0 < confidence < 1.0:
        raise StatsInputError(f"confidence must lie in (0, 1), got {confidence}")
    design = make_design(check_ratings(ratings), with_content=variant == "full")
    if variant == "full":
        estimate = _solve_full(design)
    else:
        epsilon = P910_EPSILON if variant == "p910" else 0.0
        estimate = _solve_projection(design, epsilon=epsilon)
    shift = float(np.mean(estimate.bias))
    estimate.bias, estimate.psi = estimate.bias - shift, estimate.psi + shift
    return _result(design, estimate, variant, confidence)


def make_design(frame: pd.DataFrame, *, with_content: bool) -> Design:
    """Index a checked ratings frame; content is required only by the full model."""
    e, stimuli = pd.factorize(frame["stimulus"], sort=True)
    s, raters = pd.factorize(frame["rater"], sort=True)
    if with_content:
        if "content" not in frame.columns:
            raise StatsInputError(
                "variant='full' needs a 'content' column (source of each stimulus)"
            )
        c, contents = pd.factorize(frame["content"].astype(str), sort=True)
        if (pd.Series(c).groupby(e).nunique() > 1).any():
            raise StatsInputError("a stimulus has more than one content value")
    else:
        c, contents = np.zeros(len(frame), dtype=np.intp), pd.Index(["all"])
    x = frame["score"].to_numpy(dtype=np.float64)
    return Design(pd.Index(stimuli), pd.Index(raters), pd.Index(contents), e, s, c, x)


def _rms_about_mean(design: Design, residual: Array, *, per: Literal["e", "s"]) -> Array:
    group = design.by_stimulus if per == "e" else design.by_rater
    n = group(np.ones(residual.shape))
    index = design.e if per == "e" else design.s
    mean = group(residual) / n
    return np.sqrt(group(np.square(residual - mean[index])) / n)


def _solve_projection(design: Design, *, epsilon: float) -> Estimate:
    """P.910 Annex E iteration (the likelihood equations of the content-oblivious model)."""
    e, s, x = design.e, design.s, design.x
    n_s = design.by_rater(np.ones_like(x))
    psi = design.by_stimulus(x) / design.by_stimulus(np.ones_like(x))
    bias = design.by_rater(x - psi[e]) / n_s
    converged, iteration = False, 0
    while not converged and iteration < MAX_ITERATIONS:
        iteration += 1
        inconsistency = _rms_about_mean(design, x - psi[e] - bias[s], per="s")
        weight = 1.0 / np.maximum(inconsistency**2 + epsilon, np.finfo(float).tiny)
        previous = psi
        psi = design.by_stimulus(weight[s] * (x - bias[s])) / design.by_stimulus(weight[s])
        bias = design.by_rater(x - psi[e]) / n_s
        converged = bool(np.linalg.norm(psi - previous) < TOLERANCE)
    inconsistency = _rms_about_mean(design, x - psi[e] - bias[s], per="s")
    return Estimate(psi, bias, inconsistency, np.zeros(1), iteration, converged)


def _solve_full(design: Design) -> Estimate:
    """Li & Bampis (2017) damped Newton ("belief propagation") updates, in sureal's order.

    Each iteration updates Δ, then υ, then a, then ψ; every update moves a tenth of the way to
    its Newton target (refresh rate 0.1) and υ, a are clipped at 0. Start: ψ = MOS, Δ = 0,
    υ_s and a_c the SDs (ddof 0) of the residuals about the MOS per rater and per content.
    """
    e, s, c, x = design.e, design.s, design.c, design.x
    ones = np.ones_like(x)
    psi = design.by_stimulus(x) / design.by_stimulus(ones)
    bias = np.zeros(len(design.raters))
    v = _rms_about_mean(design, x - psi[e], per="s")
    a = _sd_by_content(design, x - psi[e])
    converged, iteration = False, 0
    while not converged and iteration < MAX_ITERATIONS:
        iteration += 1
        previous = psi
        variance = v[s] ** 2 + a[c] ** 2
        target = design.by_rater((x - psi[e]) / variance) / design.by_rater(1.0 / variance)
        bias = (1 - REFRESH) * bias + REFRESH * target
        v = np.maximum(_newton_step(design, psi, bias, v, a, rater_side=True), 0.0)
        a = np.maximum(_newton_step(design, psi, bias, v, a, rater_side=False), 0.0)
        variance = v[s] ** 2 + a[c] ** 2
        target = design.by_stimulus((x - bias[s]) / variance) / design.by_stimulus(1.0 / variance)
        psi = (1 - REFRESH) * psi + REFRESH * target
        converged = bool(np.linalg.norm(psi - previous) < TOLERANCE)
    return Estimate(psi, bias, v, a, iteration, converged)


def _sd_by_content(design: Design, residual: Array) -> Array:
    n = design.by_content(np.ones(residual.shape))
    mean = design.by_content(residual) / n
    return np.sqrt(design.by_content(np.square(residual - mean[design.c])) / n)


def _newton_step(
    design: Design, psi: Array, bias: Array, v: Array, a: Array, *, rater_side: bool
) -> Array:
    """One damped Newton step on υ (``rater_side``) or a for ∂log L/∂θ = 0, θ = υ_s or a_c.

    With V = υ² + a² and residual r: ∂/∂υ = Σ υ(r²/V² − 1/V),
    ∂²/∂υ² ≈ Σ [(υ² − a²)/V² + r²(a⁴ − 3υ⁴ − 2υ²a²)/V⁴] (symmetric in a).
    """
    vv, aa = v[design.s], a[design.c]
    own, other = (vv, aa) if rater_side else (aa, vv)
    variance = vv**2 + aa**2
    r2 = (design.x - psi[design.e] - bias[design.s]) ** 2
    slope = -own / variance + own * r2 / variance**2
    curve = (own**2 - other**2) / variance**2 + r2 * (
        other**4 - 3 * own**4 - 2 * own**2 * other**2
    ) / variance**4
    group = design.by_rater if rater_side else design.by_content
    theta = v if rater_side else a
    return theta - REFRESH * group(slope) / group(curve)


def _result(
    design: Design, estimate: Estimate, variant: SubjectModelVariant, confidence: float
) -> SubjectModelResult:
    e, s, x = design.e, design.s, design.x
    ones = np.ones_like(x)
    variance = estimate.inconsistency[s] ** 2 + (
        estimate.ambiguity[design.c] ** 2 if variant == "full" else 0.0
    )
    residual = x - estimate.psi[e] - estimate.bias[s]
    with np.errstate(divide="ignore", invalid="ignore"):
        if variant == "p910":
            stimulus_se = _rms_about_mean(design, residual, per="e") / np.sqrt(
                design.by_stimulus(ones)
            )
        else:
            stimulus_se = 1.0 / np.sqrt(design.by_stimulus(1.0 / variance))
        bias_se = 1.0 / np.sqrt(design.by_rater(1.0 / variance))
        log_likelihood = float(
            np.sum(-0.5 * np.log(2 * np.pi * variance) - residual**2 / (2 * variance))
        )
    z = normal_quantile(confidence)
    level = round(confidence * 100)
    scores = pd.DataFrame(
        {
            "stimulus": design.stimuli,
            "n": design.by_stimulus(ones).astype(np.int64),
            "quality": estimate.psi,
            "std": stimulus_se,
            f"ci{level}_low": estimate.psi - z * stimulus_se,
            f"ci{level}_high": estimate.psi + z * stimulus_se,
        }
    )
    raters = _rater_table(design, estimate, bias_se, z, confidence)
    contents = pd.DataFrame(
        {"content": design.contents, "ambiguity": estimate.ambiguity}
        if variant == "full"
        else {"content": pd.Index([], dtype=object), "ambiguity": np.array([])}
    )
    return SubjectModelResult(
        scores,
        raters,
        contents,
        estimate.iterations,
        estimate.converged,
        log_likelihood,
        MODELS[variant],
    )


def _rater_table(
    design: Design, estimate: Estimate, bias_se: Array, z: float, confidence: float
) -> pd.DataFrame:
    n = design.by_rater(np.ones_like(design.x))
    alpha = (1.0 - confidence) / 2.0
    level = round(confidence * 100)
    v = estimate.inconsistency
    return pd.DataFrame(
        {
            "rater": design.raters,
            "n": n.astype(np.int64),
            "bias": estimate.bias,
            "bias_std": bias_se,
            f"bias_ci{level}_low": estimate.bias - z * bias_se,
            f"bias_ci{level}_high": estimate.bias + z * bias_se,
            "inconsistency": v,
            f"inconsistency_ci{level}_low": v * np.sqrt(n / chi2.ppf(1.0 - alpha, df=n)),
            f"inconsistency_ci{level}_high": v * np.sqrt(n / chi2.ppf(alpha, df=n)),
        }
    )
