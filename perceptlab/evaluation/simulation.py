"""Simulated raters, for the demo's example results and for tests of the analysis.

They are clearly not human data: each simulated rater has a bias b ~ N(0, 0.3²) and answers
with noise. An ACR/DCR score is round(q + b + ε), ε ~ N(0, 0.5²), clipped to the scale; a
2AFC choice picks A with probability 1 / (1 + e^{−2.5 (q_A − q_B)}) (a Bradley–Terry
observer); a triplet answer says "not sure" with probability 0.4·e^{−|q_A − q_B|}, else picks
the worse side as the one that differs more from the original, by the same law; a flicker
answer finds the test side with probability ½ + 0.48·Φ((4.5 − q)/0.35) (see
:func:`_flicker_choice`). The "true"
quality q of a stimulus follows the PSNR of its crop against the original's crop (a BTC
study's boosted crop against its zoomed original), q = 1 + 4 · clip((PSNR − 22 dB) / 20 dB,
0, 1) on the 1–5 scale, so the simulated curves differ between codecs the way PSNR says.

The draws are keyed by (seed, rater, the stimuli's content hashes, how often this rater has
seen them), not by trial order: the schedule's own shuffling (unseeded, as for real raters)
does not change what a simulated rater answers, so a seed always gives the same ratings.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import replace
from functools import lru_cache

import numpy as np
from scipy.special import ndtr

from perceptlab.codecs.files import read_bytes
from perceptlab.lib.images import decode_png
from perceptlab.lib.psychometric import GUESS, LAPSE
from perceptlab.studies.assignment import upcoming
from perceptlab.studies.judging import Answer, record
from perceptlab.studies.models import Session, Stimulus, Study, Trial
from perceptlab.studies.sessions import start_rating
from perceptlab.studies.stimuli import reference_of

BIAS_SD = 0.3
NOISE_SD = 0.5
SLOPE = 2.5
NOT_SURE = 0.4
FLICKER_SEEN_BELOW = 4.5  # q (PSNR 40 dB) at which half of the non-guessed answers see it
FLICKER_SD = 0.35


@lru_cache(maxsize=64)  # one study's originals stay decoded; bounded in a long-lived process
def _pixels(name: str) -> np.ndarray:
    return decode_png(read_bytes(name)).astype(np.float64)


def true_quality(stimulus: Stimulus) -> float:
    """q on the 1–5 scale from the crop's PSNR (the original and the hidden reference: 5)."""
    if stimulus.reconstruction is None:
        return 5.0
    reference = _pixels(str(reference_of(stimulus).png.name))
    mse = float(np.mean((_pixels(str(stimulus.png.name)) - reference) ** 2))
    psnr = 10.0 * np.log10(255.0**2 / mse) if mse > 0 else 100.0
    return 1.0 + 4.0 * float(np.clip((psnr - 22.0) / 20.0, 0.0, 1.0))


def simulate_raters(*, study: Study, raters: int, seed: int = 0) -> list[Session]:
    """``raters`` complete sessions of simulated raters (see the module docstring)."""
    scale = (1.0, 5.0) if study.is_pairwise else study.scale_range()
    sessions = []
    for index in range(raters):
        session = Session.objects.create(
            study=study,
            participant_id=f"simulated-{seed}-{index}",
            state=Session.State.INSTRUCTIONS,  # simulated raters have nothing to consent to
        )
        start_rating(session=session)
        bias = np.random.default_rng([seed, index]).normal(0.0, BIAS_SD)
        seen: Counter[tuple[str, ...]] = Counter()
        while (trial := upcoming(session=session).current) is not None:
            record(session=session, answer=_answer(trial, bias, (seed, index), seen, scale))
            session.refresh_from_db()
        sessions.append(session)
    return sessions


def _rng(
    key: tuple[int, int], stimuli: tuple[str, ...], seen: Counter[tuple[str, ...]]
) -> np.random.Generator:
    """The random stream of this rater's ``seen[stimuli]``-th look at these stimuli."""
    seen[stimuli] += 1
    return np.random.default_rng([*key, seen[stimuli], *(int(sha[:15], 16) for sha in stimuli)])


def _answer(
    trial: Trial,
    bias: float,
    key: tuple[int, int],
    seen: Counter[tuple[str, ...]],
    scale: tuple[float, float],
) -> Answer:
    shown_a, shown_b = trial.shown_as()
    answer = Answer(position=trial.position, key=uuid.uuid4(), flips=3, view_ms=4000)
    if shown_b is None:
        q = true_quality(shown_a)
        if scale != (1.0, 5.0):  # map 1–5 onto the study's scale
            q = scale[0] + (q - 1.0) / 4.0 * (scale[1] - scale[0])
        noise = _rng(key, (shown_a.png_sha256,), seen).normal(0.0, NOISE_SD)
        score = float(np.clip(np.rint(q + bias + noise), *scale))
        return replace(answer, score=score)
    if trial.session.study.is_flicker:
        return replace(answer, choice=_flicker_choice(trial, key, seen))
    # Decide on the pair in a fixed order, so the left/right swap does not change the draw.
    first, second = sorted((shown_a, shown_b), key=lambda s: (s.png_sha256, s.pk))
    rng = _rng(key, (first.png_sha256, second.png_sha256), seen)
    gap = true_quality(first) - true_quality(second)
    if trial.session.study.is_triplet:
        # which side differs more from the original: the worse one; "not sure" the more
        # often the closer the two are (AIC-3's SDR25 raters said it to 20 % of triplets)
        if rng.random() < NOT_SURE * np.exp(-abs(gap)):
            return replace(answer, choice="undecided")
        gap = -gap
    first_wins = rng.random() < 1.0 / (1.0 + np.exp(-SLOPE * gap))
    return replace(answer, choice="a" if (first is shown_a) == first_wins else "b")


def _flicker_choice(trial: Trial, key: tuple[int, int], seen: Counter[tuple[str, ...]]) -> str:
    """The flicker test: the test side is found with probability ½ + 0.48·Φ((4.5 − q)/0.35)
    (q the test image's true quality): seen when its PSNR is well below ~37.5 dB, a guess
    above ~42 dB; the lapse of 2 % is the analysis's (lib.psychometric)."""
    shown_a, shown_b = trial.shown_as()
    assert shown_b is not None
    test = shown_b if shown_b.reconstruction is not None else shown_a
    rng = _rng(key, (test.png_sha256,), seen)
    p = GUESS + (1.0 - GUESS - LAPSE) * float(
        ndtr((FLICKER_SEEN_BELOW - true_quality(test)) / FLICKER_SD)
    )
    found = rng.random() < p
    test_side = "a" if test is shown_a else "b"
    return test_side if found else ("b" if test_side == "a" else "a")
