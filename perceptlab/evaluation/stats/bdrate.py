"""Bjøntegaard-delta rate and quality between two rate–quality curves.

For an anchor codec A and a test codec T, each given as points (rate_i, quality_i):

* **BD-rate** (G. Bjøntegaard, "Calculation of average PSNR differences between RD-curves",
  VCEG-M33, 2001): fit r(q) = log10(rate) as a function of quality for both curves, average the
  difference over the overlapping quality interval [q_lo, q_hi]:
  Δ = (1 / (q_hi − q_lo)) ∫ (r_T(q) − r_A(q)) dq, and report (10^Δ − 1) · 100 %. Negative means
  the test codec needs less rate for the same quality; 1 + BD-rate/100 is the (geometric) average
  ratio of rates at equal quality.
* **BD-quality** (BD-PSNR generalised to any quality scale — MOS, Elo, JOD, a metric): fit
  quality as a function of log10(rate) and average the quality difference over the overlapping
  log-rate interval; the value is in quality units.

Interpolation (``method``): ``"cubic"`` = least-squares cubic polynomial (VCEG-M33);
``"pchip"`` = piecewise cubic Hermite, Fritsch–Carlson slopes (JCTVC-L1100, JVET CTC; the
default); ``"akima"`` = Akima spline (Herglotz et al., ICIP 2022; linear for two points).
The numbers equal the FAU ``bjontegaard`` package 1.3.0 (``bd_rate`` / ``bd_psnr`` with
``require_matching_points=False``) to 1e-9.

Conventions (where the anchor tools are silent or differ):

* Points are sorted by rate; rates must be positive, finite and distinct. Quality must be
  strictly monotone in rate, in the same direction for both curves (increasing for MOS/Elo/PSNR,
  decreasing for distortions such as LPIPS).
* ``monotone="require"`` (default) rejects a non-monotone curve with an error naming the codec and
  the offending points. ``monotone="isotonic"`` first replaces quality by its pool-adjacent-
  violators fit (least squares, equal weights; Barlow et al., *Statistical Inference under Order
  Restrictions*, 1972) in rate order; each pooled block becomes one point at the block's mean
  log-rate (geometric-mean rate) and pooled quality, since a flat stretch has no inverse.
  Use it for noisy human scores (MOS at neighbouring rates can swap).
* The overlap fraction is the overlap of the two integration-axis ranges divided by their union.
  Below ``min_overlap`` the value is still computed and ``warning`` says so; with no overlap the
  value is NaN and ``warning`` gives the reason (as ``bjontegaard``; no exception is raised,
  because a table of codecs should not fail on one disjoint pair). No Python warning is emitted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from scipy.interpolate import Akima1DInterpolator, PchipInterpolator, make_interp_spline
from scipy.optimize import isotonic_regression

from .bootstrap import DEFAULT_CONFIDENCE, percentile_interval
from .common import ModelId, StatsInputError, require_columns

Method = Literal["cubic", "pchip", "akima"]
Monotone = Literal["require", "isotonic"]
Kind = Literal["rate", "quality"]

METHODS: tuple[Method, ...] = ("cubic", "pchip", "akima")
MONOTONE_MODES: tuple[Monotone, ...] = ("require", "isotonic")
MIN_POINTS: dict[str, int] = {"cubic": 4, "pchip": 2, "akima": 2}
DEFAULT_MIN_OVERLAP = 0.75
MIN_VALID_SHARE = 0.95
"""Below this share of valid bootstrap replicates a BD-rate interval carries a warning."""
VERSION = "1"

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class BDResult:
    """One Bjøntegaard delta.

    ``value``: percent for ``kind="rate"``, quality units for ``kind="quality"``.
    ``interval``: the range integrated over — quality for BD-rate, rate (input units, not log)
    for BD-quality. ``overlap``: that range as a fraction of the union of both curves' ranges.
    ``warning``: why the value is NaN or unreliable, else ``None``.
    """

    value: float
    kind: Kind
    overlap: float
    method: Method
    interval: tuple[float, float]
    warning: str | None
    model: ModelId

    @property
    def rate_ratio(self) -> float:
        """Average test/anchor rate ratio at equal quality, 1 + BD-rate/100 (BD-rate only)."""
        if self.kind != "rate":
            raise StatsInputError("rate_ratio is defined for a BD-rate, not a BD-quality result")
        return 1.0 + self.value / 100.0


@dataclass(frozen=True)
class BDInterval:
    """Percentile interval of the BD-rate over bootstrap replicates of the quality scores.

    ``n_valid`` of ``n_replicates`` replicates gave a finite BD-rate (others were non-monotone
    under ``monotone="require"``, had too few points after pooling, or did not overlap). The
    interval covers the valid replicates only, which biases it when many are dropped (noisy
    MOS curves are often non-monotone in a resample); ``warning`` then says so.
    """

    low: float
    high: float
    n_valid: int
    n_replicates: int
    confidence: float
    method: Method
    warning: str | None
    model: ModelId


@dataclass(frozen=True)
class EqualQualityRate:
    """Test/anchor rate ratio at equal quality, ``ratio`` = 1 + BD-rate/100, with its interval."""

    ratio: float
    low: float
    high: float
    n_valid: int
    n_replicates: int
    bd: BDResult
    model: ModelId


@dataclass(frozen=True)
class _Curve:
    """A validated curve: log10 rate ascending, quality strictly monotone in it."""

    log_rate: FloatArray
    quality: FloatArray


def _model(kind: Kind, method: Method) -> ModelId:
    return ModelId(f"BD-{kind} ({method})", VERSION)


def _check_options(method: str, monotone: str, min_overlap: float) -> None:
    if method not in METHODS:
        raise StatsInputError(f"unknown method {method!r}; valid: {', '.join(METHODS)}")
    if monotone not in MONOTONE_MODES:
        raise StatsInputError(f"unknown monotone {monotone!r}; valid: {', '.join(MONOTONE_MODES)}")
    if not 0.0 <= min_overlap <= 1.0:
        raise StatsInputError(f"min_overlap must lie in [0, 1], got {min_overlap}")


def _log_rates(rate: ArrayLike, *, name: str) -> tuple[FloatArray, NDArray[np.intp]]:
    """(log10 of the rates sorted ascending, the sorting permutation); rates validated."""
    r = np.asarray(rate, dtype=np.float64)
    if r.ndim != 1:
        raise StatsInputError(f"{name}: rates must be 1-D, got shape {r.shape}")
    if not np.isfinite(r).all():
        raise StatsInputError(
            f"{name}: NaN or infinite rate at point(s) {np.flatnonzero(~np.isfinite(r))}"
        )
    if (r <= 0).any():
        raise StatsInputError(f"{name}: rates must be positive, got {r[r <= 0].tolist()}")
    order = np.argsort(r, kind="stable")
    r = r[order]
    if (np.diff(r) == 0).any():
        raise StatsInputError(f"{name}: duplicate rate(s) {r[1:][np.diff(r) == 0].tolist()}")
    return np.log10(r), order


def _points(rate: ArrayLike, quality: ArrayLike, *, name: str) -> tuple[FloatArray, FloatArray]:
    """Validated (log10 rate, quality) sorted by rate."""
    log_rate, order = _log_rates(rate, name=name)
    q = np.asarray(quality, dtype=np.float64)
    if q.shape != log_rate.shape:
        raise StatsInputError(
            f"{name}: {log_rate.size} rates but quality has shape {q.shape}; give one per rate"
        )
    if not np.isfinite(q).all():
        raise StatsInputError(
            f"{name}: NaN or infinite quality at point(s) {np.flatnonzero(~np.isfinite(q))}"
        )
    return log_rate, q[order]


def _direction(quality: FloatArray, *, name: str) -> int:
    """+1 if quality rises with rate (MOS, Elo), −1 if it falls (distortions)."""
    step = np.sign(quality[-1] - quality[0])
    if step == 0:
        raise StatsInputError(f"{name}: quality at the lowest and highest rate are equal")
    return int(step)


def _violations(log_rate: FloatArray, quality: FloatArray, direction: int) -> list[str]:
    bad = np.flatnonzero(direction * np.diff(quality) <= 0)
    return [
        f"rate {10 ** log_rate[i]:.6g} → {10 ** log_rate[i + 1]:.6g}: "
        f"quality {quality[i]:.6g} → {quality[i + 1]:.6g}"
        for i in bad
    ]


def _pooled(log_rate: FloatArray, quality: FloatArray, direction: int) -> _Curve:
    """Pool-adjacent-violators fit; each pooled block becomes one (mean log-rate, quality) point."""
    fit = isotonic_regression(quality, increasing=direction > 0)
    starts = np.asarray(fit.blocks[:-1])
    sizes = np.diff(fit.blocks)
    return _Curve(np.add.reduceat(log_rate, starts) / sizes, np.asarray(fit.x)[starts])


def _curve(
    log_rate: FloatArray,
    quality: FloatArray,
    *,
    name: str,
    method: Method,
    monotone: Monotone,
    direction: int,
) -> _Curve:
    """Monotone curve with enough points for ``method``, or :class:`StatsInputError`."""
    if monotone == "isotonic":
        curve = _pooled(log_rate, quality, direction)
    else:
        problems = _violations(log_rate, quality, direction)
        if problems:
            trend = "increasing" if direction > 0 else "decreasing"
            raise StatsInputError(
                f"{name}: quality is not strictly {trend} with rate at {'; '.join(problems)}; "
                "pass monotone='isotonic' to fit a monotone curve first"
            )
        curve = _Curve(log_rate, quality)
    after = " after pooling" if monotone == "isotonic" else ""
    _require_points(curve.quality.size, method, name=name, after=after)
    return curve


def _require_points(n: int, method: Method, *, name: str, after: str = "") -> None:
    need = MIN_POINTS[method]
    if n < need:
        raise StatsInputError(
            f"{name}: method {method!r} needs at least {need} points, got {n}{after}"
        )


def _integral(x: FloatArray, y: FloatArray, lo: float, hi: float, method: Method) -> float:
    """∫_lo^hi f(x) dx for the ``method`` interpolant of (x, y); x strictly monotone."""
    if x[-1] < x[0]:
        x, y = x[::-1], y[::-1]
    if method == "cubic":
        antiderivative = np.polynomial.Polynomial.fit(x, y, 3).integ()
        return float(antiderivative(hi) - antiderivative(lo))
    if method == "pchip":
        return float(PchipInterpolator(x, y).integrate(lo, hi))
    if x.size > 2:
        return float(Akima1DInterpolator(x, y).integrate(lo, hi))
    return float(make_interp_spline(x, y, k=1).integrate(lo, hi))


def _overlap(xa: FloatArray, xt: FloatArray) -> tuple[float, float, float]:
    """(overlap fraction of the union, lower end, upper end) of two ranges."""
    lo, hi = max(xa.min(), xt.min()), min(xa.max(), xt.max())
    union = max(xa.max(), xt.max()) - min(xa.min(), xt.min())
    return max(hi - lo, 0.0) / union, float(lo), float(hi)


def _mean_difference(
    xa: FloatArray, ya: FloatArray, xt: FloatArray, yt: FloatArray, method: Method
) -> tuple[float, float, float, float]:
    """(mean of f_test − f_anchor over the overlap, overlap fraction, lower end, upper end)."""
    overlap, lo, hi = _overlap(xa, xt)
    if overlap <= 0.0:
        return float("nan"), overlap, lo, hi
    diff = _integral(xt, yt, lo, hi, method) - _integral(xa, ya, lo, hi, method)
    return diff / (hi - lo), overlap, lo, hi


def _warning(overlap: float, min_overlap: float, axis: str) -> str | None:
    if overlap <= 0.0:
        return f"the curves do not overlap on the {axis} axis; the BD value is undefined"
    if overlap < min_overlap:
        return (
            f"the curves overlap on {overlap:.1%} of their {axis} range, "
            f"below min_overlap {min_overlap:.0%}"
        )
    return None


def _curve_pair(
    rates: tuple[ArrayLike, ArrayLike],
    qualities: tuple[ArrayLike, ArrayLike],
    *,
    names: tuple[str, str],
    method: Method,
    monotone: Monotone,
) -> tuple[_Curve, _Curve]:
    """Validate both curves; they must share the direction of quality with rate."""
    raw = [_points(r, q, name=n) for r, q, n in zip(rates, qualities, names, strict=True)]
    for (_, q), n in zip(raw, names, strict=True):
        _require_points(q.size, method, name=n)
    directions = [_direction(q, name=n) for (_, q), n in zip(raw, names, strict=True)]
    if directions[0] != directions[1]:
        raise StatsInputError(
            f"quality rises with rate for {names[directions.index(1)]!r} but falls for "
            f"{names[directions.index(-1)]!r}; both curves must use the same quality scale"
        )
    anchor, test = (
        _curve(lr, q, name=n, method=method, monotone=monotone, direction=directions[0])
        for (lr, q), n in zip(raw, names, strict=True)
    )
    return anchor, test


def bd_rate(
    rate_anchor: ArrayLike,
    quality_anchor: ArrayLike,
    rate_test: ArrayLike,
    quality_test: ArrayLike,
    *,
    method: Method = "pchip",
    min_overlap: float = DEFAULT_MIN_OVERLAP,
    monotone: Monotone = "require",
    anchor_name: str = "anchor",
    test_name: str = "test",
) -> BDResult:
    """BD-rate in percent: (10^Δ − 1)·100 with Δ the mean log10-rate difference at equal quality.

    See the module docstring for the model, the interpolation methods and the conventions.
    ``anchor_name`` / ``test_name`` only label error messages.
    """
    _check_options(method, monotone, min_overlap)
    anchor, test = _curve_pair(
        (rate_anchor, rate_test),
        (quality_anchor, quality_test),
        names=(anchor_name, test_name),
        method=method,
        monotone=monotone,
    )
    delta, overlap, lo, hi = _mean_difference(
        anchor.quality, anchor.log_rate, test.quality, test.log_rate, method
    )
    return BDResult(
        value=(10.0**delta - 1.0) * 100.0,
        kind="rate",
        overlap=overlap,
        method=method,
        interval=(lo, hi),
        warning=_warning(overlap, min_overlap, "quality"),
        model=_model("rate", method),
    )


def bd_quality(
    rate_anchor: ArrayLike,
    quality_anchor: ArrayLike,
    rate_test: ArrayLike,
    quality_test: ArrayLike,
    *,
    method: Method = "pchip",
    min_overlap: float = DEFAULT_MIN_OVERLAP,
    monotone: Monotone = "require",
    anchor_name: str = "anchor",
    test_name: str = "test",
) -> BDResult:
    """BD-quality: mean quality difference (test − anchor) over the overlapping log10-rate range.

    BD-PSNR of VCEG-M33 for any quality scale; positive means the test codec scores higher at
    equal rate when quality rises with rate. ``interval`` is in rate units.
    """
    _check_options(method, monotone, min_overlap)
    anchor, test = _curve_pair(
        (rate_anchor, rate_test),
        (quality_anchor, quality_test),
        names=(anchor_name, test_name),
        method=method,
        monotone=monotone,
    )
    delta, overlap, lo, hi = _mean_difference(
        anchor.log_rate, anchor.quality, test.log_rate, test.quality, method
    )
    return BDResult(
        value=delta,
        kind="quality",
        overlap=overlap,
        method=method,
        interval=(10.0**lo, 10.0**hi),
        warning=_warning(overlap, min_overlap, "rate"),
        model=_model("quality", method),
    )


TABLE_COLUMNS = [
    "codec",
    "bd_rate",
    "bd_rate_low",
    "bd_rate_high",
    "bd_quality",
    "rate_ratio",
    "rate_ratio_low",
    "rate_ratio_high",
    "overlap",
    "rate_overlap",
    "n_points",
    "warning",
]


def bd_rate_table(
    curves: pd.DataFrame,
    *,
    anchor: str,
    rate: str = "bpp",
    quality: str = "quality",
    codec: str = "codec",
    method: Method = "pchip",
    min_overlap: float = DEFAULT_MIN_OVERLAP,
    monotone: Monotone = "require",
    replicates: ArrayLike | None = None,
    confidence: float = DEFAULT_CONFIDENCE,
) -> pd.DataFrame:
    """BD-rate and BD-quality of every other codec against ``anchor``, one row per codec.

    Columns: codec, bd_rate (%), bd_rate_low/high (its bootstrap interval,
    :func:`bd_rate_interval`), bd_quality (quality units), rate_ratio (the bitrate at equal
    quality as a multiple of the anchor's, 1 + BD-rate/100: :func:`bitrate_at_equal_quality`)
    with rate_ratio_low/high, overlap (quality axis, of the BD-rate), rate_overlap (log-rate
    axis, of the BD-quality), n_points, warning. The intervals need ``replicates``: an array
    (len(curves), B) of bootstrap replicates of the quality of each row of ``curves``, column b
    from the same rater resample (else they are NaN). A test codec whose curve is unusable
    (non-monotone, too few points) gets NaN values and the reason in ``warning``; an unusable
    anchor raises :class:`StatsInputError`. ``frame.attrs["model"]`` holds the BD-rate
    :class:`ModelId`.
    """
    require_columns(curves, [codec, rate, quality], what="rate–quality curves")
    _check_options(method, monotone, min_overlap)
    boot = None if replicates is None else np.asarray(replicates, dtype=np.float64)
    if boot is not None and (boot.ndim != 2 or boot.shape[0] != len(curves)):
        raise StatsInputError(
            f"replicates must have shape (len(curves)={len(curves)}, B), got {boot.shape}"
        )
    positions = pd.Series(np.arange(len(curves)), index=curves.index)
    groups = {str(name): g for name, g in curves.groupby(codec, sort=True)}
    if anchor not in groups:
        raise StatsInputError(f"anchor {anchor!r} is not a codec; codecs: {', '.join(groups)}")
    base = groups[anchor]
    # Validate the anchor alone (as a comparison with itself): its errors concern every row.
    points = (base[rate], base[quality])
    bd_rate(*points, *points, method=method, monotone=monotone, anchor_name=anchor)

    def replicates_of(group: pd.DataFrame) -> FloatArray | None:
        return None if boot is None else boot[positions.loc[group.index].to_numpy()]

    rows = [
        _table_row(
            _Side(base, anchor, replicates_of(base)),
            _Side(group, name, replicates_of(group)),
            rate=rate,
            quality=quality,
            method=method,
            monotone=monotone,
            min_overlap=min_overlap,
            confidence=confidence,
        )
        for name, group in groups.items()
        if name != anchor
    ]
    frame = pd.DataFrame(rows, columns=TABLE_COLUMNS)
    frame.attrs["model"] = _model("rate", method)
    return frame


@dataclass(frozen=True)
class _Side:
    curve: pd.DataFrame
    name: str
    replicates: FloatArray | None


def _table_row(
    anchor: _Side,
    test: _Side,
    *,
    rate: str,
    quality: str,
    method: Method,
    monotone: Monotone,
    min_overlap: float,
    confidence: float,
) -> list[object]:
    """One row of :func:`bd_rate_table`; an unusable test curve gives NaN and the reason."""
    a, t = anchor.curve, test.curve
    args = (a[rate], a[quality], t[rate], t[quality])
    names = {"anchor_name": anchor.name, "test_name": test.name}
    try:
        r = bd_rate(*args, method=method, min_overlap=min_overlap, monotone=monotone, **names)
        q = bd_quality(*args, method=method, min_overlap=min_overlap, monotone=monotone, **names)
    except StatsInputError as err:
        return [test.name, *[np.nan] * 9, len(t), str(err)]
    low = high = np.nan
    warnings = [r.warning, q.warning]
    if anchor.replicates is not None and test.replicates is not None:
        try:
            interval = bd_rate_interval(
                a[rate],
                anchor.replicates,
                t[rate],
                test.replicates,
                method=method,
                monotone=monotone,
                confidence=confidence,
            )
            low, high = interval.low, interval.high
            warnings.append(interval.warning)
        except StatsInputError as err:
            warnings.append(f"no interval: {err}")
    warning = "; ".join(w for w in warnings if w) or None
    ratios = [r.rate_ratio, 1.0 + low / 100.0, 1.0 + high / 100.0]
    return [test.name, r.value, low, high, q.value, *ratios, r.overlap, q.overlap, len(t), warning]


def _replicates(
    rate: ArrayLike, replicates: ArrayLike, *, name: str
) -> tuple[FloatArray, FloatArray]:
    """(log10 rate ascending, replicates (n_points, B) in the same order)."""
    log_rate, order = _log_rates(rate, name=name)
    q = np.asarray(replicates, dtype=np.float64)
    if q.ndim != 2 or q.shape[0] != log_rate.size:
        raise StatsInputError(
            f"{name}: quality replicates must have shape (n_points={log_rate.size}, B), "
            f"got {q.shape}"
        )
    return log_rate, q[order]


def _replicate_direction(anchor: FloatArray, test: FloatArray) -> int:
    """Direction of quality with rate from the replicate means (first vs last point)."""
    means = [_finite_mean(q[[0, -1]]) for q in (anchor, test)]
    signs = {int(np.sign(m[1] - m[0])) for m in means if np.isfinite(m).all()}
    if len(signs) != 1 or 0 in signs:
        raise StatsInputError(
            "cannot tell whether quality rises or falls with rate from the replicate means "
            f"(anchor {means[0].tolist()}, test {means[1].tolist()} at lowest/highest rate)"
        )
    return signs.pop()


def _finite_mean(values: FloatArray) -> FloatArray:
    """Row means over finite entries; NaN for a row with none (without numpy's warning)."""
    finite = np.isfinite(values)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(finite, values, 0.0).sum(axis=1) / finite.sum(axis=1)


def _replicate_bd_rate(
    anchor: tuple[FloatArray, FloatArray],
    test: tuple[FloatArray, FloatArray],
    *,
    method: Method,
    monotone: Monotone,
    direction: int,
) -> float:
    """BD-rate of one replicate, NaN where that replicate's curves are unusable."""
    if not (np.isfinite(anchor[1]).all() and np.isfinite(test[1]).all()):
        return float("nan")
    try:
        a, t = (
            _curve(lr, q, name=n, method=method, monotone=monotone, direction=direction)
            for (lr, q), n in ((anchor, "anchor"), (test, "test"))
        )
    except StatsInputError:
        return float("nan")
    delta, *_ = _mean_difference(a.quality, a.log_rate, t.quality, t.log_rate, method)
    return (10.0**delta - 1.0) * 100.0


def bd_rate_replicates(
    rate_anchor: ArrayLike,
    quality_anchor_replicates: ArrayLike,
    rate_test: ArrayLike,
    quality_test_replicates: ArrayLike,
    *,
    method: Method = "pchip",
    monotone: Monotone = "require",
) -> FloatArray:
    """BD-rate (%) of every replicate column b, shape (B,); NaN where a replicate is unusable.

    Column b of both replicate arrays must come from the same rater resample, so that the
    paired difference keeps the correlation between the codecs' scores.
    """
    _check_options(method, monotone, 0.0)
    lra, qa = _replicates(rate_anchor, quality_anchor_replicates, name="anchor")
    lrt, qt = _replicates(rate_test, quality_test_replicates, name="test")
    if qa.shape[1] != qt.shape[1]:
        raise StatsInputError(
            f"anchor has {qa.shape[1]} replicates but test has {qt.shape[1]}; "
            "column b of both must come from the same resample"
        )
    direction = _replicate_direction(qa, qt)
    return np.array(
        [
            _replicate_bd_rate(
                (lra, qa[:, b]),
                (lrt, qt[:, b]),
                method=method,
                monotone=monotone,
                direction=direction,
            )
            for b in range(qa.shape[1])
        ]
    )


def bd_rate_interval(
    rate_anchor: ArrayLike,
    quality_anchor_replicates: ArrayLike,
    rate_test: ArrayLike,
    quality_test_replicates: ArrayLike,
    *,
    method: Method = "pchip",
    monotone: Monotone = "require",
    confidence: float = DEFAULT_CONFIDENCE,
) -> BDInterval:
    """Percentile interval of the BD-rate over bootstrap replicates of the quality scores.

    ``quality_*_replicates``: arrays (n_points, B), e.g. the MOS of each rate point in B rater
    resamples (:func:`.bootstrap.rater_resamples`), column b of both from the same resample.
    The interval is the (1 ± confidence)/2 percentiles of the valid replicates' BD-rates
    (Efron & Tibshirani 1993, §13.3); a replicate is invalid when its curves are unusable
    (see :class:`BDInterval`). Rater bootstrap rather than a per-point CI, because one rater's
    scores for anchor and test are correlated.
    """
    if not 0.0 < confidence < 1.0:
        raise StatsInputError(f"confidence must lie in (0, 1), got {confidence}")
    values = bd_rate_replicates(
        rate_anchor,
        quality_anchor_replicates,
        rate_test,
        quality_test_replicates,
        method=method,
        monotone=monotone,
    )
    valid = values[np.isfinite(values)]
    low, high = (np.nan, np.nan) if valid.size == 0 else percentile_interval(valid, confidence)
    return BDInterval(
        low=float(low),
        high=float(high),
        n_valid=int(valid.size),
        n_replicates=int(values.size),
        confidence=confidence,
        method=method,
        warning=_dropped_warning(valid.size, values.size, monotone),
        model=_model("rate", method),
    )


def _dropped_warning(n_valid: int, n_replicates: int, monotone: Monotone) -> str | None:
    if n_valid >= MIN_VALID_SHARE * n_replicates:
        return None
    hint = "; with noisy scores consider monotone='isotonic'" if monotone == "require" else ""
    return (
        f"only {n_valid} of {n_replicates} replicates gave a BD-rate (the others were "
        "non-monotone, incomplete or did not overlap); the interval describes the valid "
        f"replicates only and may be biased{hint}"
    )


def bitrate_at_equal_quality(
    rate_anchor: ArrayLike,
    quality_anchor: ArrayLike,
    rate_test: ArrayLike,
    quality_test: ArrayLike,
    *,
    anchor_replicates: ArrayLike | None = None,
    test_replicates: ArrayLike | None = None,
    method: Method = "pchip",
    monotone: Monotone = "require",
    min_overlap: float = DEFAULT_MIN_OVERLAP,
    confidence: float = DEFAULT_CONFIDENCE,
) -> EqualQualityRate:
    """How much rate the test codec needs relative to the anchor at equal quality.

    ``ratio`` = 1 + BD-rate/100 = 10^Δ, the geometric mean over the overlapping quality range of
    rate_test(q) / rate_anchor(q) (0.8: the test codec needs 20 % less rate). The point estimate
    uses ``quality_anchor`` / ``quality_test`` (e.g. the MOS over all raters); with replicates
    (see :func:`bd_rate_interval`) ``low`` / ``high`` bound the ratio, else they are NaN.
    """
    bd = bd_rate(
        rate_anchor,
        quality_anchor,
        rate_test,
        quality_test,
        method=method,
        min_overlap=min_overlap,
        monotone=monotone,
    )
    if anchor_replicates is None or test_replicates is None:
        low, high, n_valid, n_replicates = np.nan, np.nan, 0, 0
    else:
        iv = bd_rate_interval(
            rate_anchor,
            anchor_replicates,
            rate_test,
            test_replicates,
            method=method,
            monotone=monotone,
            confidence=confidence,
        )
        low, high, n_valid, n_replicates = iv.low, iv.high, iv.n_valid, iv.n_replicates
    return EqualQualityRate(
        ratio=bd.rate_ratio,
        low=1.0 + low / 100.0,
        high=1.0 + high / 100.0,
        n_valid=n_valid,
        n_replicates=n_replicates,
        bd=bd,
        model=bd.model,
    )
