"""The typed configuration of a study's analysis: everything besides the data that changes a
number. Stored in a bundle's manifest and a stored analysis's options (as JSON), so every
field is checked on the way in: a value outside its ``Literal`` is refused, naming the valid
ones, whether it came from the report form, ``manage.py score`` or an old bundle."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal, cast, get_args, get_type_hints

from perceptlab.evaluation import exclusion
from perceptlab.evaluation.stats import bdrate, mos, pairwise
from perceptlab.evaluation.stats.common import StatsInputError
from perceptlab.evaluation.stats.screening import Variant as ScreeningVariant

Method = Literal["acr", "dcr", "2afc", "triplet", "flicker"]
Screening = Literal["", "bt500", "p913"]
PAIRWISE: Method = "2afc"
TRIPLET: Method = "triplet"
FLICKER: Method = "flicker"
SCALE_LABELS: dict[pairwise.Prior, str] = {
    "gaussian": "Bradley–Terry with pwcmp's distance prior",
    "ridge": "Bradley–Terry with a ridge prior",
    "none": "Bradley–Terry MLE",
}
# 2AFC: how raters' lapse (random-answer) rates enter the scale (stats.lapse):
# "report" shows each rater's q only; "weight" also fits the scale with each rater's
# judgments weighted by 1 − q (stats.lapse.weighted_bradley_terry).
LapseUse = Literal["report", "weight"]


@dataclass(frozen=True)
class AnalysisConfig:
    """Everything besides the data that changes a number; stored in a bundle's manifest."""

    method: Method
    scale_min: float = 1.0
    scale_max: float = 5.0
    hidden_reference: bool = False
    confidence: float = 0.95
    n_resamples: int = 2000
    n_orderings: int = 1000
    seed: int = 0
    screening: Screening = ""
    screening_variant: ScreeningVariant = "corrected"
    anchor: str = ""  # codec the BD-rates are relative to ("" = the first codec)
    bd_method: bdrate.Method = "pchip"
    # Human curves are noisy: a bootstrap replicate may dip; pool-adjacent-violators makes
    # each curve monotone before integrating (it leaves a monotone curve as it is).
    bd_monotone: bdrate.Monotone = "isotonic"
    bootstrap: mos.BootstrapMethod = "bca"
    # 2AFC: the prior of the Bradley–Terry and Thurstone scales (stats.pairwise.PRIORS) and its
    # λ when it is "ridge". pwcmp's distance prior keeps a condition that never lost (or never
    # won) on the scale; "none" (the plain MLE) refuses such a study.
    pairwise_prior: pairwise.Prior = pairwise.DEFAULT_PRIOR
    pairwise_ridge: float | None = None
    # The exclusion policy (evaluation/exclusion.py): judgments carrying these flags, and
    # raters above these gold-failure and repeat-inconsistency shares, are left out.
    exclude_flags: tuple[str, ...] = exclusion.DEFAULT_FLAGS
    max_gold_failure: float | None = None
    max_inconsistency: float | None = None
    max_lapse: float | None = None  # 2AFC: raters whose lapse rate q exceeds it are left out
    lapse: LapseUse = "report"
    # ACR/DCR studies sampled with metric guidance (studies.guidance): the report adds each
    # stimulus's score combined with the calibrated metrics' prior, the estimate they stop on
    guided: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "exclude_flags", tuple(self.exclude_flags))  # from JSON
        _check_literals(self)
        self.policy()  # a bad policy is refused here, naming the valid values

    def policy(self) -> exclusion.ExclusionPolicy:
        return exclusion.ExclusionPolicy(
            flags=self.exclude_flags,
            max_gold_failure=self.max_gold_failure,
            max_inconsistency=self.max_inconsistency,
            max_lapse=self.max_lapse,
        )

    def as_dict(self) -> dict[str, object]:
        return {**self.__dict__, "exclude_flags": list(self.exclude_flags)}

    @classmethod
    def from_json(cls, values: Mapping[str, Any]) -> AnalysisConfig:
        """From stored JSON (a bundle's manifest, a stored analysis's options): an unknown
        key is refused, and every value is checked as in the constructor."""
        unknown = sorted(set(values) - set(_HINTS))
        if unknown:
            raise StatsInputError(
                f"unknown analysis option(s) {', '.join(unknown)}; known: {', '.join(_HINTS)}"
            )
        return cls(**values)


def as_method(value: str) -> Method:
    """A study's method as the analysis's ``Method``, refused clearly when unknown."""
    return cast(Method, _choice("method", value))


def as_screening(value: str) -> Screening:
    """A screening name as the analysis's ``Screening`` ("" for none)."""
    return cast(Screening, _choice("screening", value))


def as_lapse(value: str) -> LapseUse:
    """How rater lapses are used (``LapseUse``)."""
    return cast(LapseUse, _choice("lapse", value))


def _choice(name: str, value: str) -> str:
    choices = literal_choices(name)
    if value not in choices:
        valid = ", ".join(repr(c) for c in choices)
        raise StatsInputError(f"analysis option {name}={value!r}: valid values {valid}")
    return value


def literal_choices(name: str) -> tuple[str, ...]:
    """The valid values of a ``Literal`` field of :class:`AnalysisConfig`."""
    return tuple(get_args(_HINTS[name]))


def _check_literals(config: AnalysisConfig) -> None:
    for field in fields(config):
        if _is_literal(field.name):
            _choice(field.name, getattr(config, field.name))


def _is_literal(name: str) -> bool:
    return getattr(_HINTS[name], "__origin__", None) is Literal


_HINTS = get_type_hints(AnalysisConfig)
