"""The discretised Gaussian–Laplacian–logistic mixture (GLLMM) conditional entropy model of
Fu, Liang, Lin, Li, Akbari, Liang, Zhang, Liu, Tu & Han, "Learned image compression with
Gaussian–Laplacian–logistic mixture model and concatenated residual modules", IEEE TIP 32
(2023), arXiv 2107.06463, with exact per-element rANS coding on CompressAI 1.2.8.

Model (as the official TF code, ``fengyurenpingsheng/Learned-image-compression-with-GLLMM``,
``entropy_parameter``). Per latent element 9 components, k = 0..8: three Gaussians
(k = 0, 1, 2), three Laplacians (3, 4, 5) and three logistics (6, 7, 8), each with a mean μ_k
and a scale σ_k > 0. The parameter tensor has 30 channels per latent channel, in the official
order ``prob_k, mean_k, scale_k`` for k = 0..8, then the three family logits:
``params.view(B, 30, C, H, W)[:, 3k + {0, 1, 2}]`` and ``[:, 27 + f]``. The mixture weight of
component k of family f is softmax(within-family logits)_k · softmax(family logits)_f — the
official code's ``probs``/``probs_lap``/``probs_log`` times ``probs_mix`` — so the 9 weights sum
to 1. Scales are |s| as in the official code, bounded below at 0.11 (CompressAI's
``GaussianConditional`` lower bound) with CompressAI's gradient-preserving ``LowerBound``.

Likelihood of an integer (or noisy) value v: P(v) = Σ_k π_k [F_k((v + ½ − μ_k)/σ_k) −
F_k((v − ½ − μ_k)/σ_k)] with the standard CDFs F_Gauss(x) = ½ erfc(−x/√2), F_Laplace(x) =
½ e^x (x < 0), 1 − ½ e^−x (x ≥ 0), F_logistic(x) = 1/(1 + e^−x). All three are symmetric, so
each difference is evaluated on the side of the mean where it is numerically exact:
F((½ − |v − μ|)/σ) − F((−½ − |v − μ|)/σ) (the trick CompressAI's GaussianConditional uses).
Training adds U(−½, ½) noise (Ballé, Laparra & Simoncelli, ICLR 2017; as CompressAI's
``GaussianConditional``) and clamps P below at 1e-9 (CompressAI's likelihood bound).

Coding (hyperprior only, so every element's distribution is known before decoding). Each
element e gets its own CDF over an integer support [lo_e, hi_e] covering, for every component
with π_k ≥ ε = 1e-5, the interval μ_k ± t_k σ_k outside which that component leaves at most
ε of the element's mass: π_k · P(|X| > t_k) = ε, i.e. t_k = √2·erfinv(1 − ε/π_k) (Gaussian),
ln(π_k/ε) (Laplace), ln(2π_k/ε − 1) (logistic). The support is capped at 4095 symbols around
the rounded mixture mean. The S_e = hi_e − lo_e + 1 probabilities (the mixture CDF
differenced at the bin edges, float64) plus one escape slot holding the rest of the mass are
quantised to 16-bit frequencies as count = ⌊p · (2¹⁶ − S_e − 1)⌋ + 1, so every symbol and the
escape get ≥ 1 (the rule of the research note's prototype; CompressAI's
``pmf_to_quantized_cdf`` does the same job one CDF at a time in C++), and the remainder goes
to the most probable symbol. The tables are built vectorised, in blocks of elements sorted by
support size. Symbols are round(y/Δ) (Δ = 1 as trained) coded with CompressAI's
``RansEncoder.encode_with_indexes`` (one CDF per element, offset lo_e); a value outside
[lo_e, hi_e] takes the escape slot and is written by CompressAI's bypass coding, so every
integer up to ±2²⁴ decodes exactly. The decoder recomputes identical tables from identical
parameters (they come from the decoded hyper-latent ẑ on the same device type).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from compressai.ans import RansDecoder, RansEncoder
from compressai.ops import LowerBound
from torch import nn

COMPONENTS = 9
FAMILIES = ("gaussian", "laplace", "logistic")
PARAMS_PER_CHANNEL = 3 * COMPONENTS + len(FAMILIES)  # 30, as the official entropy_parameter
SCALE_BOUND = 0.11
LIKELIHOOD_BOUND = 1e-9
PRECISION = 16
TAIL_MASS = 1e-5  # per component: the mass a component may leave outside the support
MAX_SYMBOLS = 4095
MAX_ABS_SYMBOL = 2**24  # decoded symbols are float32, exact up to 2²⁴
BLOCK_ELEMENTS = 8192  # table rows built per vectorised pass
BLOCK_ENTRIES = 2**21  # … and at most this many CDF entries per pass


def gaussian_cdf(x: torch.Tensor) -> torch.Tensor:
    """Standard normal CDF Φ(x) = ½ erfc(−x/√2)."""
    return 0.5 * torch.erfc(x * -(2.0**-0.5))


def laplace_cdf(x: torch.Tensor) -> torch.Tensor:
    """Standard Laplace CDF (scale b = 1): ½ e^x for x < 0, 1 − ½ e^−x otherwise."""
    half_tail = 0.5 * torch.exp(-x.abs())
    return torch.where(x < 0, half_tail, 1.0 - half_tail)


def logistic_cdf(x: torch.Tensor) -> torch.Tensor:
    """Standard logistic CDF 1/(1 + e^−x)."""
    return torch.sigmoid(x)


FAMILY_CDFS = (gaussian_cdf, laplace_cdf, logistic_cdf)


def _tail_reach(weights: torch.Tensor) -> torch.Tensor:
    """t_k with π_k · P(|X_k| > t_k) = ``TAIL_MASS`` for standard X_k of each component's family
    (``weights`` (n, 9), each ≥ TAIL_MASS): √2·erfinv(1 − ε/π) for the Gaussian, ln(π/ε) for
    the Laplace (P = e^−t), ln(2π/ε − 1) for the logistic (P = 2/(1 + e^t))."""
    ratio = TAIL_MASS / weights
    gaussian = math.sqrt(2.0) * torch.erfinv(1.0 - ratio[:, 0:3])
    laplace = torch.log(1.0 / ratio[:, 3:6])
    logistic = torch.log(2.0 / ratio[:, 6:9] - 1.0)
    return torch.cat([gaussian, laplace, logistic], dim=1).clamp(min=0.0)


def _interval_mass(distance: torch.Tensor, scales: torch.Tensor, family: int) -> torch.Tensor:
    """F((½ − |d|)/σ) − F((−½ − |d|)/σ): the mass of the unit bin at distance d from the mean."""
    cdf = FAMILY_CDFS[family]
    upper = (0.5 - distance) / scales
    lower = (-0.5 - distance) / scales
    return cdf(upper) - cdf(lower)


@dataclass(frozen=True)
class CodingTables:
    """The arguments of CompressAI's ``encode_with_indexes``/``decode_with_indexes``: row
    ``indexes[e]`` of ``cdfs`` (length ``lengths[row]``, first symbol ``offsets[row]``) codes
    element e."""

    cdfs: list[list[int]]
    lengths: list[int]
    offsets: list[int]
    indexes: list[int]


class GaussianLaplacianLogisticMixtureConditional(nn.Module):
    """GLLMM conditional for a latent y of C channels; ``params`` has 30·C channels."""

    def __init__(
        self,
        scale_bound: float = SCALE_BOUND,
        likelihood_bound: float = LIKELIHOOD_BOUND,
    ) -> None:
        super().__init__()
        self.scale_bound = float(scale_bound)
        self.lower_bound_scale = LowerBound(scale_bound)
        self.likelihood_lower_bound = LowerBound(likelihood_bound)

    # --- parameters -------------------------------------------------------------------------

    def mixture(
        self, params: torch.Tensor, channels: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(means, scales, weights), each (B, 9, C, H, W), from (B, 30·C, H, W) parameters."""
        batch, total, height, width = params.shape
        if total != PARAMS_PER_CHANNEL * channels:
            raise ValueError(
                f"GLLMM parameters need {PARAMS_PER_CHANNEL}·{channels} channels, got {total}"
            )
        grouped = params.reshape(batch, PARAMS_PER_CHANNEL, channels, height, width)
        components = grouped[:, : 3 * COMPONENTS].reshape(
            batch, COMPONENTS, 3, channels, height, width
        )
        logits, means, raw_scales = components.unbind(dim=2)
        scales = self.lower_bound_scale(raw_scales.abs())
        within = torch.softmax(logits.reshape(batch, 3, 3, channels, height, width), dim=2)
        family = torch.softmax(grouped[:, 3 * COMPONENTS :], dim=1)
        weights = (within * family.unsqueeze(2)).reshape(batch, COMPONENTS, channels, height, width)
        return means, scales, weights

    # --- training-time likelihood ----------------------------------------------------------

    def likelihood(
        self, values: torch.Tensor, params: torch.Tensor, step: float = 1.0
    ) -> torch.Tensor:
        """Σ_k π_k [F_k(v + ½) − F_k(v − ½)] for ``values`` (B, C, H, W); not yet bounded.

        With a quantisation step Δ ≠ 1 the values are y/Δ and the mixture is that of y/Δ:
        means and (bounded) scales divided by Δ — exact for location–scale families.
        """
        means, scales, weights = self.mixture(params, values.shape[1])
        if step != 1.0:
            means, scales = means / step, scales / step
        distance = (values.unsqueeze(1) - means).abs()
        total = torch.zeros_like(values)
        for family in range(len(FAMILIES)):
            part = slice(3 * family, 3 * family + 3)
            mass = _interval_mass(distance[:, part], scales[:, part], family)
            total = total + (weights[:, part] * mass).sum(dim=1)
        return total

    def forward(
        self, y: torch.Tensor, params: torch.Tensor, training: bool | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(ỹ, bounded likelihood): ỹ = y + U(−½, ½) in training, round(y) in evaluation."""
        if training is None:
            training = self.training
        if training:
            values = y + torch.empty_like(y).uniform_(-0.5, 0.5)
        else:
            values = torch.round(y)
        return values, self.likelihood_lower_bound(self.likelihood(values, params))

    # --- coding tables ---------------------------------------------------------------------

    @torch.no_grad()
    def coding_tables(self, params: torch.Tensor, channels: int, step: float = 1.0) -> CodingTables:
        """One 16-bit CDF per latent element (flattened B, C, H, W order) for the symbols
        round(y/Δ), with the mixture's means and scales divided by Δ.

        The elements are sorted by support size and processed in blocks as padded 2-D
        tables (a block's rows are padded with 2¹⁶ after the escape slot, which rANS ignores
        beyond ``cdf_lengths``); ``indexes[e]`` is the row of element e.
        """
        if not torch.isfinite(params).all():
            raise ValueError("the GLLMM parameters are not finite")
        means, scales, weights = self.mixture(params.detach(), channels)
        means = (means.double() / step).movedim(1, -1).reshape(-1, COMPONENTS)
        scales = (scales.double() / step).movedim(1, -1).reshape(-1, COMPONENTS)
        weights = weights.double().movedim(1, -1).reshape(-1, COMPONENTS)
        count = means.shape[0]
        device = means.device

        relevant = weights >= TAIL_MASS
        tails = _tail_reach(weights.clamp(min=TAIL_MASS))
        reach = 2.0**24
        low_end = torch.where(relevant, means - tails * scales, torch.full_like(means, reach))
        high_end = torch.where(relevant, means + tails * scales, torch.full_like(means, -reach))
        low = torch.floor(low_end.amin(dim=1).clamp(-reach, reach)).long()
        high = torch.ceil(high_end.amax(dim=1).clamp(-reach, reach)).long()
        centre = torch.round((weights * means).sum(dim=1).clamp(-reach, reach)).long()
        half = MAX_SYMBOLS // 2
        low = torch.maximum(low, centre - half)
        high = torch.minimum(high, centre + half)
        sizes = high - low + 1  # S_e symbols, then one escape slot

        order = torch.argsort(sizes, stable=True)
        rows: list[list[int]] = []
        start = 0
        while start < count:
            stop = min(start + BLOCK_ELEMENTS, count)
            widest = int(sizes[order[stop - 1]])
            stop = min(stop, start + max(1, BLOCK_ENTRIES // (widest + 2)))
            block = order[start:stop]
            width = int(sizes[block[-1]])  # the largest in the block (sorted)
            rows += self._block_cdfs(
                means[block], scales[block], weights[block], low[block], sizes[block], width
            ).tolist()
            start = stop
        indexes = torch.empty_like(order)
        indexes[order] = torch.arange(count, device=device)
        return CodingTables(
            cdfs=rows,
            lengths=(sizes[order] + 2).tolist(),
            offsets=low[order].tolist(),
            indexes=indexes.tolist(),
        )

    @staticmethod
    def _block_cdfs(
        means: torch.Tensor,
        scales: torch.Tensor,
        weights: torch.Tensor,
        low: torch.Tensor,
        sizes: torch.Tensor,
        width: int,
    ) -> torch.Tensor:
        """(n, width + 2) CDF rows: the mixture CDF at the bin edges lo − ½ … lo + S − ½,
        differenced to the pmf, quantised to counts ⌊p·(2¹⁶ − S − 1)⌋ + 1, the escape slot,
        the remainder on the most probable symbol, then the running sum from 0."""
        n = means.shape[0]
        columns = torch.arange(width + 1, device=means.device, dtype=torch.float64)
        edges = (low.double() - 0.5).unsqueeze(1) + columns  # (n, width + 1)
        cdf = torch.zeros_like(edges)
        for family in range(len(FAMILIES)):
            standard = FAMILY_CDFS[family]
            for k in range(3 * family, 3 * family + 3):
                mean, scale = means[:, k : k + 1], scales[:, k : k + 1]
                cdf += weights[:, k : k + 1] * standard((edges - mean) / scale)
        valid = columns[:-1].unsqueeze(0) < sizes.unsqueeze(1)  # (n, width)
        pmf = torch.where(valid, (cdf[:, 1:] - cdf[:, :-1]).clamp(min=0.0), 0.0)
        inside = pmf.sum(dim=1, keepdim=True)
        pmf = pmf / inside.clamp(min=1.0)  # float rounding can push the sum past 1
        escape = (1.0 - inside).clamp(min=0.0)

        scale = (2**PRECISION - sizes - 1).double().unsqueeze(1)
        counts = torch.where(valid, torch.floor(pmf * scale).long() + 1, 0)
        escape_counts = torch.floor(escape * scale).long() + 1
        remainder = 2**PRECISION - counts.sum(dim=1, keepdim=True) - escape_counts
        best = counts.argmax(dim=1, keepdim=True)  # the first most probable symbol
        counts.scatter_add_(1, best, remainder)
        counts = torch.cat([counts, torch.zeros(n, 1, dtype=torch.long, device=means.device)], 1)
        counts.scatter_(1, sizes.unsqueeze(1), escape_counts)
        return F.pad(torch.cumsum(counts, dim=1), (1, 0))

    # --- bitstream -------------------------------------------------------------------------

    @staticmethod
    def symbols(y: torch.Tensor, step: float = 1.0) -> torch.Tensor:
        """The integer symbols round(y/Δ) that :meth:`compress` codes."""
        return torch.round(y / step)

    @torch.no_grad()
    def compress(self, y: torch.Tensor, params: torch.Tensor, step: float = 1.0) -> bytes:
        """One rANS string for all elements of ``y`` (any batch size)."""
        symbols = self.symbols(y, step)
        if not torch.isfinite(symbols).all() or symbols.abs().max() > MAX_ABS_SYMBOL:
            raise ValueError(f"latent values beyond ±{MAX_ABS_SYMBOL}·Δ cannot be coded")
        tables = self.coding_tables(params, y.shape[1], step)
        data: bytes = RansEncoder().encode_with_indexes(
            symbols.to("cpu", torch.int64).reshape(-1).tolist(),
            tables.indexes,
            tables.cdfs,
            tables.lengths,
            tables.offsets,
        )
        return data

    @torch.no_grad()
    def decompress(
        self,
        data: bytes,
        params: torch.Tensor,
        shape: tuple[int, int, int, int],
        step: float = 1.0,
    ) -> torch.Tensor:
        """The symbols round(y/Δ) of shape (B, C, H, W), as float on ``params``' device."""
        tables = self.coding_tables(params, shape[1], step)
        if len(tables.indexes) != math.prod(shape):
            raise ValueError(f"parameters for {len(tables.indexes)} elements, latent shape {shape}")
        values = RansDecoder().decode_with_indexes(
            data, tables.indexes, tables.cdfs, tables.lengths, tables.offsets
        )
        return torch.tensor(values, dtype=torch.float32, device=params.device).reshape(shape)

    def estimated_bits(self, y: torch.Tensor, params: torch.Tensor, step: float = 1.0) -> float:
        """−Σ log₂ P(round(y/Δ)) with the 1e-9 bound: the rate estimate of the coded symbols."""
        with torch.no_grad():
            symbols = self.symbols(y, step)
            likelihood = self.likelihood_lower_bound(self.likelihood(symbols, params, step))
            return float(-torch.log2(likelihood).sum())
