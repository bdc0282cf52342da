"""Training of the neural codecs: one loop for every family, runnable with or without Django.

``manage.py train_codec NAME --data DIR --steps N`` and ``python -m
perceptlab.codecs.neural.training NAME ...`` (for a GPU machine without the platform's
database) run the same :func:`train`. A family module (``hific``, ``gc`` ...) provides

    CONFIGS: {"small": {...}, "paper": {...}}       architecture + loss settings
    training_system(config) -> TrainingSystem          an nn.Module with the parts below

and the loop does the rest: random crops from an image folder, Adam for the codec and (where
there is one) the discriminator, a separate optimiser for CompressAI's entropy-bottleneck
quantiles (their ``aux_loss``), a progress bar, a JSON-lines loss log, periodic training
checkpoints that ``--resume`` continues from exactly (model, optimisers, step, random
state), and at the end the inference checkpoint (:mod:`.checkpoints`) with CompressAI's
coding tables built (``update(force=True)``).

A TrainingSystem has ``codec`` (the module that ships), ``discriminator`` (or None) and::

    generator_loss(x, step) -> (loss, logs, cache)     x: (B, 3, h, w) in [0, 1]
    discriminator_loss(x, cache, step) -> (loss, logs)  only called when gan_active(step)
    gan_active(step) -> bool                            e.g. HiFiC's second stage
    description() -> dict                               loss terms, for the model card
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from perceptlab.codecs.neural.family import FamilyConfig
from perceptlab.codecs.neural.family import family as neural_family
from perceptlab.lib.images import IMAGE_SUFFIXES

if TYPE_CHECKING:
    import torch

    from perceptlab.codecs.neural.layers import TrainingSystem

RECIPES: dict[str, tuple[str, dict[str, Any]]] = {
    "hific": ("hific", {}),
    "hific-sparse": ("hific", {"sparsity_weight": 0.5}),
    "gc": ("gc", {}),
    "tunable": ("tunable", {}),
    "rdo-gllmm": ("rdo", {}),
}
"""Registry slug → (family module, config overrides) of what ``train_codec NAME`` trains."""


class TrainingError(ValueError):
    """Bad options or data for training; the message says what to change."""


@dataclass
class TrainOptions:
    codec: str
    data: Path
    steps: int
    config: str = "small"
    name: str = ""
    out: Path = Path("var/neural")
    batch: int = 4
    crop: int = 128
    lr: float = 1e-4
    device: str = "cpu"
    threads: int | None = 1
    seed: int = 0
    resume: bool = False
    save_every: int = 500
    log_every: int = 10
    overrides: dict[str, Any] = field(default_factory=dict)
    progress: bool = True
    max_seconds: float | None = None
    """Stop (and write the checkpoint) once this much training time has passed."""
    labels: Path | None = None
    """Folder of semantic label maps (GC's selective mode, ``semantic_classes`` > 0)."""
    init_from: str = ""
    """Start the codec from this checkpoint (name or path) — e.g. to continue training a
    shipped model on another machine; the discriminator and optimisers start afresh."""

    def checkpoint_name(self, config: FamilyConfig) -> str:
        """``--name``, else ``<codec>-<config>`` (``gc-c<C>-<config>`` for GC)."""
        if self.name:
            return self.name
        channels = f"c{getattr(config, 'channels', 0)}-" if self.codec == "gc" else ""
        return f"{self.codec}-{channels}{self.config}"


def resolve_config(options: TrainOptions) -> tuple[str, FamilyConfig]:
    """(family, config) for the options: the family's preset, the recipe, then overrides."""
    if options.codec not in RECIPES:
        raise TrainingError(f"unknown codec {options.codec!r}; trainable: {', '.join(RECIPES)}")
    family, recipe = RECIPES[options.codec]
    module = neural_family(family)
    if options.config not in module.CONFIGS:
        raise TrainingError(
            f"{options.codec} has no config {options.config!r}; choose {sorted(module.CONFIGS)}"
        )
    try:
        config = module.CONFIGS[options.config].with_overrides({**recipe, **options.overrides})
    except ValueError as exc:  # an unknown setting, or a value of the wrong type
        raise TrainingError(str(exc)) from None
    return family, config


def image_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise TrainingError(f"--data {folder} is not a folder")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise TrainingError(
            f"--data {folder} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})"
        )
    return files


class CropSampler:
    """Random training crops: each image is first downscaled by a random factor in
    [0.75, 0.95] (never below the crop size; HiFiC's data pipeline), then cropped at a random
    position and flipped left–right with probability ½. All images stay in memory as uint8.

    With ``labels_dir`` (GC's selective mode) every image needs a semantic label map of the
    same size, ``<labels_dir>/<image stem>.png`` holding class indices (8-bit, one channel),
    which is scaled (nearest neighbour), cropped and flipped with its image.
    """

    def __init__(
        self,
        files: Sequence[Path],
        crop: int,
        device: str,
        seed: int,
        labels_dir: Path | None = None,
    ) -> None:
        import torch
        from PIL import Image

        self.crop = crop
        self.device = device
        self.images: list[torch.Tensor] = []
        self.labels: list[torch.Tensor] = []
        for path in files:
            with Image.open(path) as image:
                pixels = np.asarray(image.convert("RGB"))
            if min(pixels.shape[:2]) < crop:
                continue
            self.images.append(torch.from_numpy(pixels.copy()).permute(2, 0, 1).to(device))
            if labels_dir is not None:
                self.labels.append(_label_map(labels_dir, path, pixels.shape[:2]).to(device))
        if not self.images:
            raise TrainingError(f"no training image is at least {crop}×{crop} pixels")
        self.generator = np.random.default_rng(seed)

    @property
    def has_labels(self) -> bool:
        return bool(self.labels)

    def state(self) -> dict[str, Any]:
        return dict(self.generator.bit_generator.state)

    def restore(self, state: Mapping[str, Any]) -> None:
        self.generator.bit_generator.state = dict(state)

    def batch_with_labels(self, size: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(B, 3, crop, crop) in [0, 1], and (B, 1, crop, crop) class indices or None."""
        import torch
        import torch.nn.functional as F

        crops, label_crops = [], []
        for index in self.generator.integers(len(self.images), size=size):
            image = self.images[int(index)]
            height, width = image.shape[1:]
            low = max(0.75, self.crop / min(height, width))
            factor = float(self.generator.uniform(low, max(low, 0.95)))
            new_size = (
                max(self.crop, round(height * factor)),
                max(self.crop, round(width * factor)),
            )
            scaled = F.interpolate(
                image.unsqueeze(0).float(),
                size=new_size,
                mode="bilinear",
                antialias=True,
                align_corners=False,
            )
            top = int(self.generator.integers(new_size[0] - self.crop + 1))
            left = int(self.generator.integers(new_size[1] - self.crop + 1))
            window = (slice(None), slice(None), slice(top, top + self.crop))
            crop = scaled[window][..., left : left + self.crop]
            flip = self.generator.random() < 0.5
            crops.append(crop.flip(-1) if flip else crop)
            if self.labels:
                labels = F.interpolate(
                    self.labels[int(index)][None, None].float(), size=new_size, mode="nearest"
                )
                label_crop = labels[window][..., left : left + self.crop]
                label_crops.append(label_crop.flip(-1) if flip else label_crop)
        images = torch.cat(crops).div_(255.0).clamp_(0.0, 1.0)
        return images, (torch.cat(label_crops).long() if label_crops else None)


def _label_map(folder: Path, image: Path, size: tuple[int, ...]) -> torch.Tensor:
    import torch
    from PIL import Image

    path = folder / f"{image.stem}.png"
    if not path.is_file():
        raise TrainingError(f"--labels {folder}: no label map {path.name} for {image.name}")
    with Image.open(path) as opened:
        if opened.mode not in ("L", "P"):
            raise TrainingError(f"{path} is not a one-channel map of class indices")
        labels = np.asarray(opened)
    if labels.shape != tuple(size):
        raise TrainingError(f"{path} is {labels.shape}, its image {tuple(size)}")
    return torch.from_numpy(labels.astype(np.int64))


def _optimisers(system: Any, lr: float) -> dict[str, torch.optim.Optimizer]:
    import torch

    codec_params = [p for n, p in system.codec.named_parameters() if not n.endswith("quantiles")]
    aux_params = [p for n, p in system.codec.named_parameters() if n.endswith("quantiles")]
    optimisers: dict[str, torch.optim.Optimizer] = {"codec": torch.optim.Adam(codec_params, lr=lr)}
    if aux_params:
        optimisers["aux"] = torch.optim.Adam(aux_params, lr=1e-3)
    if system.discriminator is not None:
        optimisers["discriminator"] = torch.optim.Adam(system.discriminator.parameters(), lr=lr)
    return optimisers


def hardware(device: str) -> str:
    """The GPU's name, or the CPU's model name (``/proc/cpuinfo`` where there is one)."""
    import os

    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)} (CUDA {torch.version.cuda})"
    name = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    threads = torch.get_num_threads()
    return f"{name}, {os.cpu_count()} cores, torch on {threads} thread(s)"


@dataclass
class _Run:
    """One training run's state: what :func:`train` builds, steps, saves and resumes."""

    options: TrainOptions
    family: str
    config: FamilyConfig
    name: str
    system: TrainingSystem
    optimisers: dict[str, torch.optim.Optimizer]
    sampler: CropSampler
    step: int = 0
    seconds: float = 0.0
    previous: dict[str, Any] = field(default_factory=dict)

    @property
    def state_path(self) -> Path:
        return self.options.out / f"{self.name}.train.pt"

    @property
    def log_path(self) -> Path:
        return self.options.out / f"{self.name}.log.jsonl"

    @classmethod
    def start(cls, options: TrainOptions) -> _Run:
        """The model, optimisers and crop sampler for ``options`` (settings checked first)."""
        import torch

        if options.steps < 1:
            raise TrainingError("--steps must be at least 1")
        if options.device.startswith("cuda") and not torch.cuda.is_available():
            raise TrainingError(f"--device {options.device}: no CUDA device is available here")
        if options.threads:
            torch.set_num_threads(options.threads)
        family, config = resolve_config(options)
        classes = int(getattr(config, "semantic_classes", 0))
        if options.labels is not None and not classes:
            raise TrainingError(
                "--labels needs a model with semantic classes (--set semantic_classes=K)"
            )
        if classes and options.labels is None:
            raise TrainingError("a selective (SC) model needs --labels DIR with the label maps")
        options.out.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(options.seed)
        system = neural_family(family).training_system(config).to(options.device)
        files = image_files(options.data)
        return cls(
            options=options,
            family=family,
            config=config,
            name=options.checkpoint_name(config),
            system=system,
            optimisers=_optimisers(system, options.lr),
            sampler=CropSampler(files, options.crop, options.device, options.seed, options.labels),
        )

    def resume_or_begin(self, echo: Any) -> None:
        """Continue from the saved state (``--resume``), or start afresh (from ``--init-from``)."""
        import torch

        if self.options.resume and self.state_path.exists():
            state = torch.load(
                self.state_path, map_location=self.options.device, weights_only=False
            )
            if state["family"] != self.family or state["config"] != self.config.to_dict():
                raise TrainingError(
                    f"{self.state_path} was trained with other settings; use another --name or "
                    "drop --resume"
                )
            # The codec first, through its own load_state_dict (CompressAI's sizes the
            # entropy models' coding tables, built in a run started --init-from and
            # empty in a fresh system), then everything with the discriminator.
            codec = {
                key.removeprefix("codec."): value
                for key, value in state["system"].items()
                if key.startswith("codec.")
            }
            self.system.codec.load_state_dict(codec)
            self.system.load_state_dict(state["system"])
            for key, optimiser in self.optimisers.items():
                optimiser.load_state_dict(state["optimisers"][key])
            self.sampler.restore(state["sampler"])
            torch.set_rng_state(state["torch_rng"])
            self.step, self.seconds = int(state["step"]), float(state["seconds"])
            self.previous = dict(state.get("previous") or {})
            echo(f"resuming {self.name} at step {self.step}")
            return
        if self.log_path.exists():
            self.log_path.unlink()
        if self.options.init_from:
            self.previous = _initialise(self.system, self.options.init_from, self.family)

    def save_state(self) -> None:
        """The resumable state, written atomically (a kill never leaves half a file)."""
        import torch

        tmp = self.state_path.with_suffix(".tmp")
        torch.save(
            {
                "family": self.family,
                "config": self.config.to_dict(),
                "system": self.system.state_dict(),
                "optimisers": {k: o.state_dict() for k, o in self.optimisers.items()},
                "sampler": self.sampler.state(),
                "torch_rng": torch.get_rng_state(),
                "step": self.step,
                "seconds": self.seconds,
                "previous": self.previous,
            },
            tmp,
        )
        tmp.replace(self.state_path)

    def train_step(self) -> dict[str, float]:
        """One batch: the codec's step, CompressAI's auxiliary step, the discriminator's."""
        import torch

        x, labels = self.sampler.batch_with_labels(self.options.batch)
        optimisers, system = self.optimisers, self.system
        optimisers["codec"].zero_grad(set_to_none=True)
        loss, logs, cache = system.generator_loss(x, self.step, labels)
        if not torch.isfinite(loss):
            raise TrainingError(f"the loss became {loss.item()} at step {self.step}; lower --lr")
        loss.backward()
        optimisers["codec"].step()
        if "aux" in optimisers:
            optimisers["aux"].zero_grad(set_to_none=True)
            aux = system.codec.aux_loss()
            aux.backward()
            optimisers["aux"].step()
            logs["aux"] = float(aux.detach())
        if "discriminator" in optimisers and system.gan_active(self.step):
            optimisers["discriminator"].zero_grad(set_to_none=True)
            d_loss, d_logs = system.discriminator_loss(x, cache, self.step)
            d_loss.backward()
            optimisers["discriminator"].step()
            logs.update(d_logs)
        return logs

    def loop(self, echo: Any) -> None:
        """Steps until ``--steps`` or ``--max-seconds``; logs every ``--log-every``, saves the
        resumable state every ``--save-every`` and at the end."""
        options = self.options
        progress = None
        if options.progress:
            from tqdm import tqdm

            progress = tqdm(total=options.steps, initial=self.step, desc=self.name, unit="step")
        limit = options.max_seconds
        self.system.train()
        with self.log_path.open("a") as log:
            while self.step < options.steps:
                if limit is not None and self.seconds >= limit:
                    echo(f"stopping at step {self.step}: --max-seconds {limit:g} reached")
                    break
                started = time.perf_counter()
                logs = self.train_step()
                self.step += 1
                self.seconds += time.perf_counter() - started
                out_of_time = limit is not None and self.seconds >= limit
                if self.step % options.log_every == 0 or self.step == options.steps or out_of_time:
                    record = {"step": self.step, "seconds": round(self.seconds, 3), **logs}
                    log.write(json.dumps(record) + "\n")
                    log.flush()
                    if progress is not None:
                        progress.set_postfix({k: f"{v:.4g}" for k, v in list(logs.items())[:4]})
                if progress is not None:
                    progress.update(1)
                if self.step % options.save_every == 0:
                    self.save_state()
        if progress is not None:
            progress.close()
        self.save_state()

    def write_checkpoint(self) -> Path:
        """The inference checkpoint (entropy-coder tables built) with its training card."""
        import torch

        from perceptlab.codecs.neural import checkpoints

        options = self.options
        self.system.eval()
        self.system.codec.update(force=True)
        card = {
            "codec": options.codec,
            "family": self.family,
            "config_preset": options.config,
            "data": f"{options.data} ({len(self.sampler.images)} images)",
            "steps": self.step,
            "steps_planned": options.steps,
            "batch": options.batch,
            "crop": options.crop,
            "lr": options.lr,
            "seed": options.seed,
            "hardware": hardware(options.device),
            "train_seconds": round(self.seconds, 1),
            "torch": str(torch.__version__),
            **self.system.description(),
        }
        if self.previous:
            card["initialised_from"] = self.previous
            earlier = int(self.previous.get("steps_total", self.previous.get("steps", 0)))
            card["steps_total"] = self.step + earlier
        path = options.out / f"{self.name}{checkpoints.SUFFIX}"
        checkpoints.save(
            path,
            family=self.family,
            name=self.name,
            version="1",
            config=self.config.to_dict(),
            state_dict=self.system.codec.state_dict(),
            card=card,
        )
        return path


def train(options: TrainOptions, *, echo: Any = print) -> Path:
    """Train (or resume), write the inference checkpoint; returns its path."""
    run = _Run.start(options)
    run.resume_or_begin(echo)
    run.loop(echo)
    path = run.write_checkpoint()
    echo(f"wrote {path} after {run.step} steps in {run.seconds:.0f} s")
    return path


def _initialise(system: Any, source: str, family: str) -> dict[str, Any]:
    """Load the codec weights of checkpoint ``source``; returns what the card should say."""
    from perceptlab.codecs.neural import checkpoints

    path = Path(source) if source.endswith(checkpoints.SUFFIX) else checkpoints.find(source)
    if path is None or not path.is_file():
        raise TrainingError(f"--init-from {source}: no such checkpoint")
    checkpoint = checkpoints.load(path, family=family)
    try:
        system.codec.load_state_dict(checkpoint.state_dict)
    except RuntimeError as error:
        raise TrainingError(f"--init-from {source} has another architecture ({error})") from None
    return {
        "name": checkpoint.name,
        "sha256": checkpoint.sha256,
        "steps": checkpoint.card.get("steps"),
        "steps_total": checkpoint.card.get("steps_total", checkpoint.card.get("steps", 0)),
    }


def parse_override(text: str) -> tuple[str, Any]:
    """``key=value`` with value read as JSON where it parses (numbers, true/false), else text."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise TrainingError(f"--set takes key=value, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("codec", choices=sorted(RECIPES), help="registry slug to train")
    parser.add_argument("--data", type=Path, required=True, help="folder of training images")
    parser.add_argument("--steps", type=int, required=True, help="total training steps")
    parser.add_argument("--config", default="small", help="small (CPU) or paper")
    parser.add_argument("--name", default="", help="checkpoint name (default: codec-config)")
    parser.add_argument("--out", type=Path, default=None, help="output folder")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (1 on a busy box)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resume", action="store_true", help="continue a stopped run")
    parser.add_argument("--save-every", type=int, default=500)
    parser.add_argument("--log-every", type=int, default=10)
    parser.add_argument("--channels", type=int, default=None, help="GC: latent channels C")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a config entry"
    )
    parser.add_argument(
        "--max-seconds", type=float, default=None, help="stop after this much training time"
    )
    parser.add_argument(
        "--labels", type=Path, default=None, help="GC selective mode: folder of label maps"
    )
    parser.add_argument(
        "--init-from", default="", help="start the codec from this checkpoint (name or path)"
    )
    parser.add_argument("--no-progress", action="store_true")


def options_from(namespace: Mapping[str, Any], default_out: Path) -> TrainOptions:
    overrides = dict(parse_override(text) for text in namespace.get("set") or [])
    if namespace.get("channels") is not None:
        overrides["channels"] = namespace["channels"]
    return TrainOptions(
        codec=namespace["codec"],
        data=Path(namespace["data"]),
        steps=int(namespace["steps"]),
        config=namespace["config"],
        name=namespace.get("name") or "",
        out=Path(namespace["out"]) if namespace.get("out") else default_out,
        batch=int(namespace["batch"]),
        crop=int(namespace["crop"]),
        lr=float(namespace["lr"]),
        device=namespace["device"],
        threads=namespace.get("threads"),
        seed=int(namespace["seed"]),
        resume=bool(namespace.get("resume")),
        save_every=int(namespace["save_every"]),
        log_every=int(namespace["log_every"]),
        overrides=overrides,
        progress=not namespace.get("no_progress"),
        max_seconds=namespace.get("max_seconds"),
        init_from=namespace.get("init_from") or "",
        labels=Path(namespace["labels"]) if namespace.get("labels") else None,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m perceptlab.codecs.neural.training")
    add_arguments(parser)
    namespace = vars(parser.parse_args(argv))
    try:
        train(options_from(namespace, Path("var/neural")))
    except TrainingError as error:
        parser.error(str(error))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
