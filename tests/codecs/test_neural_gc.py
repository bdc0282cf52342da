"""GC: 5-level quantiser, symbols at the log2(5) bound, exact decode, SC's mask path."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from neuralkit import TINY_GC, kodak

from perceptlab.codecs.neural import gc
from perceptlab.codecs.neural.codec import pad_to, to_tensor


@pytest.fixture(scope="module")
def model() -> gc.GC:
    torch.manual_seed(0)
    return gc.build(gc.Config.of({**TINY_GC, "channels": 8})).eval()


def test_the_quantiser_is_hard_forward_and_soft_backward() -> None:
    w = torch.tensor([-3.2, -1.4, -0.6, 0.2, 0.49, 1.51, 7.0], requires_grad=True)
    q = gc.quantize(w.view(1, 1, 1, -1))
    assert q.flatten().tolist() == [-2.0, -1.0, -1.0, 0.0, 0.0, 2.0, 2.0]
    q.sum().backward()
    assert w.grad is not None and (w.grad > 0).any()  # the soft assignment's gradient


@pytest.mark.parametrize("channels", gc.CHANNEL_COUNTS)
def test_the_bound_is_c_log2_5_over_256(channels: int) -> None:
    assert gc.bound_bpp(channels) == pytest.approx(channels * math.log2(5) / 256)


def test_a_kodak_image_codes_at_the_log2_5_bound_and_decodes_exactly(model) -> None:  # type: ignore[no-untyped-def]
    x, _, _ = pad_to(to_tensor(kodak(3)), gc.GC.stride)
    with torch.inference_mode():
        sections = model.compress(x, {})
        symbols = model.symbols(x)
        count = symbols.numel()
        decoded = gc.decode_symbols(sections[0], count)
        image = model.decompress(sections, x.shape[-2:], {})
        again = model.decompress(sections, x.shape[-2:], {})
    bound_bytes = 8 * 768 * 512 * gc.bound_bpp(8) / 8 / 8  # C·log2(5)·(H/16)(W/16) bits
    assert bound_bytes <= len(sections[0]) <= bound_bytes + 8  # rANS flush only
    assert np.array_equal(decoded, symbols.flatten().numpy())
    assert torch.equal(image, again) and image.shape == x.shape


def test_symbols_are_centre_indices(model) -> None:  # type: ignore[no-untyped-def]
    with torch.inference_mode():
        symbols = model.symbols(torch.rand(1, 3, 32, 48))
    assert symbols.shape == (1, 8, 2, 3) and int(symbols.min()) >= 0 and int(symbols.max()) <= 4


def test_selective_mode_codes_only_the_preserved_region_and_the_label_map() -> None:
    torch.manual_seed(0)
    sc = gc.build(gc.Config.of({**TINY_GC, "semantic_classes": 3})).eval()
    x = torch.rand(1, 3, 64, 96)
    labels = torch.nn.functional.one_hot(torch.randint(0, 3, (64, 96)), 3).permute(2, 0, 1)[None]
    mask = torch.zeros(1, 1, 64, 96)
    mask[..., :32, :48] = 1.0  # preserve the top-left quarter: 2×3 of the 4×6 latent cells
    with torch.inference_mode():
        sections = sc.compress_selective(x, labels.float(), mask)
        full = sc.symbols(x)
        preserved = gc.decode_symbols(sections[0], 4 * 2 * 3)
        out = sc.decompress(sections, (64, 96), {})
        expected = sc(x, labels.float(), mask)["x_hat"].clamp(0, 1)
    assert np.array_equal(preserved, full[0, :, :2, :3].reshape(-1).numpy())
    assert torch.allclose(out, expected, atol=1e-6)
    with pytest.raises(ValueError, match="SC model"):
        sc.compress(x, {})


def test_one_training_step_gives_finite_losses_and_gradients() -> None:
    torch.manual_seed(1)
    system = gc.training_system(gc.Config.of(TINY_GC))
    x = torch.rand(2, 3, 64, 64)
    loss, logs, cache = system.generator_loss(x, step=3)
    loss.backward()
    assert torch.isfinite(loss) and {"mse", "g_adv", "fm"} <= set(logs)
    assert all(p.grad is not None for p in system.codec.encoder.parameters())
    d_loss, _ = system.discriminator_loss(x, cache, step=3)
    d_loss.backward()
    assert torch.isfinite(d_loss)
    card = system.description()
    assert card["bound_bpp"] == pytest.approx(gc.bound_bpp(4)) and card["perceptual"] == "ms-ssim"


def test_selective_mode_trains_on_label_maps(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from neuralkit import training_images
    from PIL import Image

    from perceptlab.codecs.neural import checkpoints
    from perceptlab.codecs.neural.training import TrainingError, TrainOptions, train

    data = training_images(tmp_path / "images")
    labels = tmp_path / "labels"
    labels.mkdir()
    for path in sorted(data.glob("*.png")):
        grey = np.asarray(Image.open(path).convert("L"))
        Image.fromarray((grey // 86).astype(np.uint8), mode="L").save(labels / path.name)
    sc = {k: v for k, v in TINY_GC.items() if k != "semantic_classes"}
    options = TrainOptions(
        codec="gc", data=data, steps=2, crop=64, batch=2, out=tmp_path / "out",
        progress=False, labels=labels, overrides={**sc, "semantic_classes": 3},
    )  # fmt: skip
    path = train(options, echo=lambda _: None)
    model = gc.build(gc.Config.of(checkpoints.load(path).config))
    assert model.semantic_classes == 3 and model.label_encoder is not None
    log = (tmp_path / "out" / "gc-c4-small.log.jsonl").read_text()
    assert '"preserved"' in log
    (labels / "1.png").unlink()
    with pytest.raises(TrainingError, match=r"no label map 1\.png"):
        train(options, echo=lambda _: None)
    options.overrides = sc
    with pytest.raises(TrainingError, match="needs a model with semantic classes"):
        train(options, echo=lambda _: None)
    options.labels, options.overrides = None, {**sc, "semantic_classes": 3}
    with pytest.raises(TrainingError, match="needs --labels"):
        train(options, echo=lambda _: None)


def test_training_masks_are_boxes_and_label_maps_become_one_hot() -> None:
    torch.manual_seed(0)
    masks = gc.random_boxes(4, (40, 60))
    for mask in masks[:, 0]:
        rows, cols = mask.sum(1), mask.sum(0)
        assert 0.3 * 40 - 1 <= rows.count_nonzero() <= 0.8 * 40 + 1
        assert 0.3 * 60 - 1 <= cols.count_nonzero() <= 0.8 * 60 + 1
        assert float(mask.sum()) == float(rows.count_nonzero() * cols.count_nonzero())
    labels = torch.tensor([[[[0, 2], [1, 1]]]])
    assert gc.one_hot(labels, 3)[0, :, 0, 1].tolist() == [0.0, 0.0, 1.0]
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        gc.one_hot(labels, 2)
