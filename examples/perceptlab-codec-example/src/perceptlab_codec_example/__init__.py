"""An example PerceptLab codec plugin (registered through the ``perceptlab.codecs`` entry point)."""

from __future__ import annotations

from perceptlab_codec_example.dct import DctCodec

__all__ = ["DctCodec"]
