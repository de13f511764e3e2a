"""A run's configuration: ``TrainConfig`` (every setting that is not a model setting) and the one
seam that turns a flat run config into a trainer config plus a model config (``resolve_run_config``).

The defaults follow YOLACT's training recipe (Bolya et al. 2019, ``yolact/data/config.py``):
SGD with momentum 0.9 and weight decay 5e-4, learning rate 1e-3, a linear warm-up from a tenth of
it, and step decay by 0.1 at 35 %, 75 %, 87.5 % and 93.75 % of training (280k, 600k, 700k, 750k of
800k iterations). Iteration counts are small by default so that a run fits a 2-core CPU.

Adding a trainer key is a change in one place: a ``TrainConfig`` field (with its line under
``Attributes``) and, if its values need one, a check in ``__post_init__``. The CLI, the study spec,
``config.yaml`` and checkpoints all go through ``resolve_run_config`` and pick it up from there.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from losslab.catalogue import precheck_losses
from losslab.config import apply_overrides, check_amp, config_to_dict, suggest
from losslab.models.registry import get_model_info

__all__ = [
    "DATA_FILE_KEYS",
    "SYNTH_KEYS",
    "RunConfig",
    "TrainConfig",
    "lr_factor",
    "resolve_lr_steps",
    "resolve_run_config",
    "synthetic_args",
]

#: The synthetic generator's arguments (``losslab.data.ensure_synthetic``) and the trainer keys
#: that carry them.
SYNTH_KEYS = {"train": "synth_train", "val": "synth_val", "size": "synth_size", "seed": "synth_seed"}
#: The trainer keys that name a split's files explicitly (any COCO json + image folder pair).
DATA_FILE_KEYS = ("train_json", "train_images", "val_json", "val_images")
#: Trainer keys that may be 0 but not negative.
NON_NEGATIVE = (
    "max_iter", "epochs", "warmup_iters", "workers", "eval_every", "ckpt_every", "max_bad_steps", "threads",
    "num_samples", "weight_decay", "grad_clip", "augment_variants",
)  # fmt: skip


@dataclass
class TrainConfig:
    """Trainer settings; ``run_experiment`` takes these keys flat next to the model's keys.

    Attributes:
        model: preset name (``losslab models list``).
        data: ``"synthetic"`` or a dataset folder in any layout ``losslab.data.resolve_splits`` knows
            (losslab's, the Cigarette Butts download, a Roboflow COCO export, COCO 2017).
        train_json, train_images, val_json, val_images: explicit COCO json and image folder of a
            split, replacing what the layout of ``data`` says (or standing alone); empty = unused.
        synth_train, synth_val, synth_size, synth_seed: the synthetic generator's arguments,
            used when ``data == "synthetic"`` (cached under ``cache_dir``).
        cache_dir: where synthetic datasets are kept; empty means ``losslab.data``'s default
            (``$LOSSLAB_CACHE/datasets`` or ``~/.cache/losslab/datasets``).
        batch_size: images per step and process.
        max_iter: optimiser steps; ignored when ``epochs > 0``.
        epochs: train for this many passes over the training split instead (0 = use ``max_iter``).
        augment: instance-training augmentation: ``"ssd"`` (YOLACT's photometric, expand, crop,
            flip), ``"light"`` (photometric and flip: short from-scratch budgets learn faster)
            or ``"none"``.
        augment_variants: 0 draws a fresh augmentation each time a training image is read; K > 0
            gives each image K fixed augmented copies, the same in every run (``CocoInstances``),
            so that a frozen backbone's features can be cached (``cache_features``).
        label_noise: corruption of the training masks only (``losslab.data.noise_spec``), e.g.
            ``"boundary(px=2) + drop(p=0.1)"``; drawn per (``seed``, image, instance); ``"none"``.
        optimizer: ``"sgd"`` (with momentum, the paper's optimiser) or ``"adamw"`` (converges far
            faster from a randomly initialised backbone; ``momentum`` is then unused).
        lr, momentum, weight_decay: optimiser settings.
        warmup_iters: linear warm-up length, from ``warmup_factor * lr`` to ``lr``.
        warmup_factor: the warm-up's starting fraction of ``lr``.
        lr_steps: decay points, each a fraction of ``max_iter`` (a value in (0, 1]) or an
            absolute iteration (a value > 1); the rate is multiplied by ``gamma`` at each.
        gamma: the step-decay factor.
        grad_clip: maximum global gradient norm (0 = no clipping).
        seed: seeds Python, NumPy and torch; the data order depends on it only.
        deterministic: ask torch for deterministic algorithms (slower on CUDA).
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``, ``"cuda:1"``.
        workers: data-loader worker processes (0 keeps a resumed run bit-exact, augmentation included).
        eval_every: evaluate on the val split every K iterations (0 = only at the end).
        ckpt_every: write ``checkpoints/last.pt`` every K iterations (and always at the end).
        log_every: log a row to ``metrics.csv`` every K iterations.
        amp: mixed precision (``losslab.precision``): true is fp16 autocast + GradScaler on CUDA and
            bf16 autocast + channels-last on CPUs with native bf16 (float32 on other CPUs, logged
            once); ``bf16`` forces bf16 autocast on any device; false is float32.
        max_bad_steps: stop with an error after more than this many consecutive non-finite steps.
        max_skipped_fraction: fail the run once more than this fraction of its ``max_iter`` steps
            were skipped (non-finite loss or gradient): a run that learned from too few of its
            steps is not a result. 0.05 lets a rare bad batch pass (1 step in 20) and fails a
            diverged run as soon as that is certain.
        threads: torch CPU threads of the run (``torch.set_num_threads``), set at its start and
            restored at its end; 0 takes the count torch has then (one per core by default) and
            records it in ``config.yaml``. Part of the run config because the thread count changes
            the numbers (the order of float sums); a study fixes it (1 unless its spec says
            otherwise) so that ``--workers`` never changes a run.
        skip_bad: leave out the dataset entries that cannot be used (``losslab data check`` lists
            them) instead of refusing the dataset.
        fps_images: how many images the FPS measurement times.
        eval_score_threshold: detections scoring below this are left out of the COCO evaluation
            (0 keeps every detection the model returns, as COCO's own evaluation expects). The
            YOLACT++ loss survey's ``eval.py`` used 0.15 (its ``--score_threshold`` default): a
            truncated precision-recall curve, so its APs are not comparable with a threshold of 0.
        num_samples: how many val images get a sample-prediction overlay in ``samples/``.
        tensorboard: also write TensorBoard event files in ``run_dir/tensorboard`` (the optional
            extra ``tensorboard``; ``losslab.engine.tensorboard``): every logged number and each
            evaluation's metrics.
        plugins: user code imported before the run resolves its model and losses (``losslab.plugins``):
            ``.py`` files or module names that call ``register_loss`` / ``register_model``. Stored as
            ``"PATH#HASH"`` (the source's hash), so a changed plugin is a different run.
        ddp_find_unused: let DDP handle parameters that get no gradient in some step (a batch
            without positives); costs one extra graph traversal per step, set false to save it.
    """

    model: str = "yolact_tiny"
    data: str = "synthetic"
    train_json: str = ""
    train_images: str = ""
    val_json: str = ""
    val_images: str = ""
    synth_train: int = 200
    synth_val: int = 50
    synth_size: int = 256
    synth_seed: int = 0
    cache_dir: str = ""
    batch_size: int = 8
    max_iter: int = 500
    epochs: int = 0
    augment: str = "ssd"
    augment_variants: int = 0
    label_noise: str = "none"
    optimizer: str = "sgd"
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_iters: int = 100
    warmup_factor: float = 0.1
    lr_steps: tuple[float, ...] = (0.35, 0.75, 0.875, 0.9375)
    gamma: float = 0.1
    grad_clip: float = 0.0
    seed: int = 0
    deterministic: bool = False
    device: str = "auto"
    workers: int = 0
    eval_every: int = 0
    ckpt_every: int = 100
    log_every: int = 10
    amp: bool | str = True
    max_bad_steps: int = 20
    max_skipped_fraction: float = 0.05
    threads: int = 0
    skip_bad: bool = False
    fps_images: int = 50
    eval_score_threshold: float = 0.0
    num_samples: int = 8
    tensorboard: bool = False
    plugins: tuple[str, ...] = ()
    ddp_find_unused: bool = True

    def __post_init__(self) -> None:
        check_amp(self.amp, "train config: amp")
        if self.augment not in ("ssd", "light", "none"):
            raise ValueError(f"train config: augment must be 'ssd', 'light' or 'none', got {self.augment!r}")
        if self.optimizer not in ("sgd", "adamw"):
            raise ValueError(f"train config: optimizer must be 'sgd' or 'adamw', got {self.optimizer!r}")
        self._check_finite()
        for name in ("batch_size", "log_every", "fps_images"):
            if getattr(self, name) < 1:
                raise ValueError(f"train config: {name} must be >= 1, got {getattr(self, name)}")
        for name in NON_NEGATIVE:
            if getattr(self, name) < 0:
                raise ValueError(f"train config: {name} must be >= 0, got {getattr(self, name)}")
        if self.max_iter == 0 and self.epochs == 0:
            raise ValueError("train config: set max_iter > 0 or epochs > 0")
        if self.lr <= 0 or not 0 < self.gamma <= 1 or not 0 < self.warmup_factor <= 1:
            raise ValueError(
                f"train config: need lr > 0, 0 < gamma <= 1 and 0 < warmup_factor <= 1 "
                f"(got lr={self.lr}, gamma={self.gamma}, warmup_factor={self.warmup_factor})"
            )
        if not 0 <= self.momentum < 1:
            raise ValueError(f"train config: momentum must lie in [0, 1), got {self.momentum}")
        if self.tensorboard:
            from losslab.engine.tensorboard import MISSING

            if MISSING:
                raise ValueError(f"train config: {MISSING}")
        if not 0 <= self.eval_score_threshold < 1:
            raise ValueError(
                f"train config: eval_score_threshold must lie in [0, 1), got {self.eval_score_threshold} "
                "(0 keeps every detection; the YOLACT++ loss survey used 0.15)"
            )
        if not 0 <= self.max_skipped_fraction <= 1:
            raise ValueError(f"train config: max_skipped_fraction must lie in [0, 1], got {self.max_skipped_fraction}")
        if any(s <= 0 for s in self.lr_steps):
            raise ValueError(f"train config: lr_steps must be positive, got {list(self.lr_steps)}")
        self.lr_steps = tuple(float(s) for s in self.lr_steps)
        self._check_label_noise()

    def _check_finite(self) -> None:
        # NaN passes every comparison check (nan <= 0 is False) and SGD / AdamW accept NaN and inf:
        # without this a NaN learning rate trains a NaN model to the end.
        for f in fields(self):
            value = getattr(self, f.name)
            values = value if isinstance(value, tuple) else (value,)
            if any(isinstance(v, float) and not math.isfinite(v) for v in values):
                raise ValueError(f"train config: {f.name} must be a finite number, got {value}")

    def _check_label_noise(self) -> None:
        from losslab.data.noise_spec import parse_label_noise  # pure Python, on the grammar module

        try:  # refused here, before any data is generated or read
            parse_label_noise(self.label_noise)
        except ValueError as exc:
            raise ValueError(f"train config: label_noise: {exc}") from None

    @classmethod
    def field_names(cls) -> list[str]:
        """The field names, in declaration order."""
        return [f.name for f in fields(cls)]


def synthetic_args(cfg: TrainConfig) -> dict[str, int]:
    """``ensure_synthetic``'s keyword arguments for a run: ``{"train": cfg.synth_train, ...}``."""
    return {arg: getattr(cfg, key) for arg, key in SYNTH_KEYS.items()}


@dataclass
class RunConfig:
    """A run's config split in its two parts, every default filled in (``resolve_run_config``).

    Attributes:
        train: the trainer settings.
        model: the preset's config dataclass.
        task: the preset's task, ``"instance"`` or ``"dense"``.
        model_keys_given: the model keys the caller set (the rest are the preset's defaults).
    """

    train: TrainConfig
    model: Any
    task: str
    model_keys_given: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """``{"train": {...}, "model": {...}}``: what ``config.yaml`` and checkpoints hold."""
        return {"train": config_to_dict(self.train), "model": config_to_dict(self.model)}

    def build_model(self) -> Any:
        """The preset's network built from ``self.model``."""
        return get_model_info(self.train.model).build(self.model)


def _sections(
    config: Mapping[str, Any], overrides: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """``(train part, model part, trainer keys given flat)`` of a flat or nested config plus overrides."""
    trainer = set(TrainConfig.field_names())
    if isinstance(config.get("model"), Mapping):
        extra = sorted(set(config) - {"train", "model"})
        if extra:
            raise ValueError(f"a nested run config has only 'train' and 'model' sections; remove {extra}")
        train, model = dict(config.get("train") or {}), dict(config["model"])
        if "model" in overrides:  # a new preset: the old model section belongs to the old one
            model = {}
        flat = dict(overrides)
    else:
        train, model, flat = {}, {}, {**config, **overrides}
    for key, value in flat.items():
        (train if key in trainer else model)[key] = value
    return train, model, {k: v for k, v in flat.items() if k in trainer}


def resolve_run_config(
    config: Mapping[str, Any], overrides: Mapping[str, Any] | None = None, strict_plugins: bool = True
) -> RunConfig:
    """Split and check a run config: the one place where a run's keys meet the trainer and the model.

    ``config`` is flat (``{"model": "yolact_tiny", "max_iter": 200, "mask_loss": "bce"}``) or the
    nested form of ``config.yaml`` (``{"train": {...}, "model": {...}}``); ``overrides`` are flat
    ``key=value`` settings on top (the command line's), routed into the right section. A flat key
    that both the trainer and the model know (``amp``) is given to both. The model's config comes
    from its preset's config factory: no weights are built. The run's ``plugins`` are imported first
    (``strict_plugins``: a plugin whose source changed since its hash was recorded is refused; else
    it is loaded as it is now, with a warning).

    Raises:
        ValueError: a key that is neither a trainer key nor a key of the model's config (with the
            closest of both), an unknown preset, or a value a check refuses.
    """
    train_part, model_part, flat_train = _sections(config, overrides or {})
    train = apply_overrides(TrainConfig(), train_part, where="train")
    if train.plugins:  # before the preset and the loss specs are looked up: they may be the plugins'
        from losslab.plugins import load_plugins

        train = replace(train, plugins=load_plugins(train.plugins, strict=strict_plugins))
    else:  # a bad loss spec is refused here, before the model registry loads torch
        precheck_losses(train.model, {**flat_train, **model_part})
    info = get_model_info(train.model)
    model_keys = [f.name for f in fields(info.defaults)]
    train_keys = TrainConfig.field_names()
    for key in model_part:
        if key not in model_keys:
            raise ValueError(
                f"unknown key {key!r} for a run of {train.model}.{suggest(key, [*train_keys, *model_keys])} "
                f"Trainer keys: {', '.join(train_keys)}. Model keys of {train.model}: {', '.join(model_keys)}"
            )
    model_part.update({k: v for k, v in flat_train.items() if k in model_keys and k != "model"})
    return RunConfig(train, info.config(**model_part), info.task, tuple(model_part))


def resolve_lr_steps(lr_steps: tuple[float, ...], max_iter: int) -> list[int]:
    """Decay iterations: values in (0, 1] are fractions of ``max_iter``, larger ones absolute."""
    return sorted(round(s * max_iter) if s <= 1 else int(s) for s in lr_steps)


def lr_factor(iteration: int, max_iter: int, cfg: TrainConfig) -> float:
    """The learning-rate multiplier at ``iteration`` (0-based): linear warm-up times step decay.

    Example: with ``warmup_iters=10, warmup_factor=0.1`` the factor is 0.1 at iteration 0, 0.55 at
    5 and 1.0 from 10 on, then ``gamma ** k`` after the k-th step of ``lr_steps``.
    """
    warm = 1.0
    if iteration < cfg.warmup_iters:
        warm = cfg.warmup_factor + (1.0 - cfg.warmup_factor) * iteration / cfg.warmup_iters
    passed = sum(1 for s in resolve_lr_steps(cfg.lr_steps, max_iter) if iteration >= s)
    return warm * cfg.gamma**passed
