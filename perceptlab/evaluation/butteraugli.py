"""Butteraugli distances from libjxl's ``butteraugli_main`` (Debian package libjxl-devtools).

Butteraugli (J. Alakuijala et al., "Guetzli: perceptually guided JPEG encoder",
arXiv:1703.04421, 2017; the libjxl version: github.com/libjxl/libjxl lib/jxl/butteraugli)
models the visual difference of two images at each pixel in units where about 1 is a just
noticeable difference; ``butteraugli_main`` reports its largest value (the max-norm) and a
p-norm of the map. Lower is better; identical images give 0.

Each pair is written as two lossless PNGs (8-bit RGB, no colour profile: the tool reads them as
sRGB and shows them at its default 80 nits) into a temporary directory, which is removed
however the run ends, and the tool is run there as ``butteraugli_main ref.png dist.png
--pnorm 3``, bounded by :data:`TIMEOUT_SECONDS` (a timeout kills its process group:
:func:`perceptlab.codecs.external.run_tool`).

Output parsed (libjxl-devtools 0.7.0-10+deb12u1 on Debian 12; ``tools/butteraugli_main.cc``
prints it with ``printf("%.10f\\n", distance)`` and ``printf("%g-norm: %f\\n", p, pnorm)``),
on stdout::

    4.0129222870
    3-norm: 2.130863

and on stderr one line per image that has no colour profile, which is ignored::

    ./lib/extras/dec/color_hints.cc:54: No color_space/icc_pathname given, assuming sRGB

Below 8 px on either side the tool prints 0 for any pair, so the metrics need 8×8 px.

The binary is ``$BUTTERAUGLI`` if set (a name looked up on PATH, or a path), else
``butteraugli_main``, looked up on PATH and then in the Python environment's ``bin`` folder,
as :func:`perceptlab.codecs.external.resolve_binary` does for the codecs.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image

from perceptlab.codecs.base import CodecError
from perceptlab.codecs.external import probe_output, run_tool

Pixels = npt.NDArray[np.uint8]

BINARY = "butteraugli_main"
ENVIRONMENT_VARIABLE = "BUTTERAUGLI"
PACKAGE = "libjxl-devtools"
TIMEOUT_SECONDS = 120.0
"""Per pair; a full Kodak image takes ~0.3 s on one core."""
P_NORM = 3
MIN_SIDE = 8

_NUMBER = r"[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?"
_MAX_NORM_LINE = re.compile(rf"^({_NUMBER})$")
_P_NORM_LINE = re.compile(rf"^{P_NORM}-norm: (\S+)$")
_DPKG_OWNER = re.compile(r"^([a-z0-9][a-z0-9+.-]*)(?::[a-z0-9-]+)?: /", re.MULTILINE)


class ButteraugliError(RuntimeError):
    """``butteraugli_main`` failed, timed out or printed what this module cannot read."""


@dataclass(frozen=True)
class ButteraugliDistance:
    """What one ``butteraugli_main`` run reports for a pair."""

    max_norm: float
    """The largest per-pixel distance (the first line)."""
    p_norm: float
    """The :data:`P_NORM`-norm of the distance map (the ``3-norm:`` line)."""


def configured_binary() -> str:
    """``settings.METRIC_BINARIES["butteraugli"]`` (from ``$BUTTERAUGLI``), else
    ``butteraugli_main``; outside Django, ``$BUTTERAUGLI`` itself."""
    from django.conf import settings

    if settings.configured:
        return str(getattr(settings, "METRIC_BINARIES", {}).get("butteraugli") or BINARY)
    return os.environ.get(ENVIRONMENT_VARIABLE) or BINARY


def find_binary() -> str | None:
    """Path of the configured binary, or None if it is not there."""
    configured = configured_binary()
    return shutil.which(configured) or shutil.which(
        configured, path=str(Path(sys.executable).parent)
    )


def missing_binary_reason() -> str:
    configured = configured_binary()
    where = "on PATH" if configured == BINARY else f"(${ENVIRONMENT_VARIABLE} is {configured!r})"
    return (
        f"binary {BINARY!r} not found {where}; install {PACKAGE} "
        f"or set {ENVIRONMENT_VARIABLE}=/path/to/{BINARY}"
    )


def distance(
    reference: Pixels, distorted: Pixels, *, binary: str, timeout: float = TIMEOUT_SECONDS
) -> ButteraugliDistance:
    """Butteraugli distances of one pair of (H, W, 3) uint8 sRGB images, from ``binary``."""
    with tempfile.TemporaryDirectory(prefix="perceptlab-butteraugli-") as tmp:
        work = Path(tmp)
        for name, pixels in (("ref.png", reference), ("dist.png", distorted)):
            Image.fromarray(pixels).save(work / name, compress_level=1)
        args = [binary, "ref.png", "dist.png", "--pnorm", str(P_NORM)]
        try:
            output = run_tool("butteraugli", args, cwd=work, timeout=timeout)
        except CodecError as exc:
            raise ButteraugliError(str(exc)) from None
    return parse_output(output)


def parse_output(output: str) -> ButteraugliDistance:
    """The two distances in ``butteraugli_main``'s output (stdout, then stderr)."""
    lines = [line.strip() for line in output.splitlines()]
    max_norms = [m.group(1) for line in lines if (m := _MAX_NORM_LINE.match(line))]
    p_norms = [m.group(1) for line in lines if (m := _P_NORM_LINE.match(line))]
    if len(max_norms) != 1 or len(p_norms) != 1:
        raise ButteraugliError(
            f"{BINARY} printed {len(max_norms)} distance line(s) and {len(p_norms)} "
            f"'{P_NORM}-norm:' line(s), expected one of each; its output: {_excerpt(output)}"
        )
    values = []
    for text in (max_norms[0], p_norms[0]):
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and value >= 0):
            raise ButteraugliError(
                f"{BINARY} printed the distance {text!r}, expected a number ≥ 0; "
                f"its output: {_excerpt(output)}"
            )
        values.append(value)
    return ButteraugliDistance(*values)


def _excerpt(output: str, limit: int = 300) -> str:
    text = " | ".join(line.strip() for line in output.splitlines() if line.strip())
    return repr(text if len(text) <= limit else text[:limit] + "…")


def version() -> str | None:
    """The Debian version of the package that owns the binary (named when it is not
    libjxl-devtools), ``"unknown (path)"`` for a binary no package owns (``$BUTTERAUGLI``
    pointing at a build of one's own), None if there is no binary.

    ``butteraugli_main`` has no version flag, so dpkg is asked (cached per path).
    """
    path = find_binary()
    if path is None:
        return None
    owner = _DPKG_OWNER.search(probe_output(("dpkg-query", "-S", os.path.realpath(path))) or "")
    if owner is not None:
        package = owner.group(1)
        version = (probe_output(("dpkg-query", "-W", "-f=${Version}", package)) or "").strip()
        if re.fullmatch(r"[0-9][\w.+:~-]*", version):
            return version if package == PACKAGE else f"{version} ({package})"
    return f"unknown ({path})"
