"""Neural (learned and GAN) codecs on PyTorch and CompressAI, imported only when used.

Families: :mod:`.hific` (HiFiC and its sparsity variant), :mod:`.gc` (GC/SC),
:mod:`.tunable` (the tunable importance-map codec), :mod:`.rdo` (the improved-RDO GAN with a
Gaussian–Laplacian–logistic mixture entropy model), :mod:`.baselines` (CompressAI's
pretrained hyperprior models) and :mod:`.msillm` (MS-ILLM's released models, Muckley et al.
2023, on the network of :mod:`.msillm_net`). Shared parts: the bitstream :mod:`.container`,
the codec adapter :mod:`.codec`, :mod:`.checkpoints`, :mod:`.layers`, :mod:`.losses` and the
training loop :mod:`.training` (``manage.py train_codec``).
"""

import warnings

# CompressAI decorates functions with torch.jit.script, which torch ≥ 2.10 deprecates: one
# warning per import that says nothing about this project.
warnings.filterwarnings(
    "ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning
)
