"""The neural families' typed configurations: what checkpoints store reads back exactly,
and a wrong or unknown setting is refused by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from perceptlab.codecs.neural import checkpoints
from perceptlab.codecs.neural.family import FAMILIES, family

SHIPPED = Path(checkpoints.__file__).parent / "checkpoints"


@pytest.mark.parametrize("name", FAMILIES)
def test_every_preset_survives_its_stored_form(name: str) -> None:
    module = family(name)
    for preset, config in module.CONFIGS.items():
        stored = config.to_dict()
        assert all(not isinstance(v, tuple) for v in stored.values()), preset  # JSON lists
        assert module.Config.of(stored) == config, preset
        assert type(config) is module.Config and config.FAMILY == name


def test_each_shipped_checkpoint_reads_as_its_family_config() -> None:
    shipped = sorted(SHIPPED.glob(f"*{checkpoints.SUFFIX}"))
    assert len(shipped) == 8
    for path in shipped:
        checkpoint = checkpoints.load(path)
        module = family(checkpoint.family)
        config = module.Config.of(checkpoint.config)
        stored = {k: v for k, v in config.to_dict().items() if k in checkpoint.config}
        assert stored == checkpoint.config, path.name  # nothing the file says is changed


def test_wrong_and_unknown_settings_are_refused_by_name() -> None:
    hific, rdo, tunable = family("hific"), family("rdo"), family("tunable")
    small = hific.CONFIGS["small"]
    with pytest.raises(ValueError, match=r"unknown hific setting\(s\) \['latent'\]; known: "):
        small.with_overrides({"latent": 8})
    with pytest.raises(ValueError, match=r"latent_channels takes an integer, not 8\.5"):
        small.with_overrides({"latent_channels": 8.5})
    with pytest.raises(ValueError, match="encoder_channels takes a list of integers"):
        small.with_overrides({"encoder_channels": [8, "8"]})
    with pytest.raises(ValueError, match="gan_weight takes a number, not True"):
        small.with_overrides({"gan_weight": True})
    with pytest.raises(ValueError, match="perceptual takes text, not 3"):
        small.with_overrides({"perceptual": 3})
    with pytest.raises(ValueError, match="pyramid_weights takes a list of numbers"):
        tunable.CONFIGS["small"].with_overrides({"pyramid_weights": ["a"]})
    with pytest.raises(ValueError, match="the RDO loss has no sparsity term"):
        rdo.CONFIGS["small"].with_overrides({"sparsity_weight": 0.5})
    changed = small.with_overrides({"gan_weight": 1, "encoder_channels": [8, 8, 8, 8, 8]})
    assert changed.gan_weight == 1.0 and isinstance(changed.gan_weight, float)
    assert (
        changed.encoder_channels == (8,) * 5 and small.encoder_channels != changed.encoder_channels
    )
    with pytest.raises(AttributeError):  # frozen
        small.gan_weight = 2.0  # type: ignore[misc]


def test_training_refuses_an_unknown_or_mistyped_set() -> None:
    from perceptlab.codecs.neural.training import TrainingError, TrainOptions, resolve_config

    def options(**overrides: object) -> TrainOptions:
        return TrainOptions(codec="hific-sparse", data=Path("."), steps=1, overrides=overrides)

    family_name, config = resolve_config(options(gan_weight=0.5))
    assert family_name == "hific" and config.sparsity_weight == 0.5 and config.gan_weight == 0.5
    with pytest.raises(TrainingError, match=r"unknown hific setting\(s\) \['gan'\]"):
        resolve_config(options(gan=1))
    with pytest.raises(TrainingError, match="warmup_steps takes an integer, not 'soon'"):
        resolve_config(options(warmup_steps="soon"))
