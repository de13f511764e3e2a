"""``TrainConfig``: every setting of one training run that is not a model setting.

The defaults follow YOLACT's training recipe (Bolya et al. 2019, ``yolact/data/config.py``):
SGD with momentum 0.9 and weight decay 5e-4, learning rate 1e-3, a linear warm-up from a tenth of
it, and step decay by 0.1 at 35 %, 75 %, 87.5 % and 93.75 % of training (280k, 600k, 700k, 750k of
800k iterations). Iteration counts are small by default so that a run fits a 2-core CPU.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch

from losslab.precision import check_amp

__all__ = ["TrainConfig", "lr_factor", "resolve_device", "resolve_lr_steps"]


@dataclass
class TrainConfig:
    """Trainer settings; ``run_experiment`` takes these keys flat next to the model's keys.

    Attributes:
        model: preset name (``losslab models list``).
        data: ``"synthetic"`` or a dataset folder (``ROOT/train``, ``ROOT/val``, ``ROOT/annotations``).
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
        fps_images: how many images the FPS measurement times.
        num_samples: how many val images get a sample-prediction overlay in ``samples/``.
        ddp_find_unused: let DDP handle parameters that get no gradient in some step (a batch
            without positives); costs one extra graph traversal per step, set false to save it.
    """

    model: str = "yolact_tiny"
    data: str = "synthetic"
    synth_train: int = 200
    synth_val: int = 50
    synth_size: int = 256
    synth_seed: int = 0
    cache_dir: str = ""
    batch_size: int = 8
    max_iter: int = 500
    epochs: int = 0
    augment: str = "ssd"
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
    fps_images: int = 50
    num_samples: int = 8
    ddp_find_unused: bool = True

    def __post_init__(self) -> None:
        check_amp(self.amp, "train config: amp")
        if self.augment not in ("ssd", "light", "none"):
            raise ValueError(f"train config: augment must be 'ssd', 'light' or 'none', got {self.augment!r}")
        if self.optimizer not in ("sgd", "adamw"):
            raise ValueError(f"train config: optimizer must be 'sgd' or 'adamw', got {self.optimizer!r}")
        positive = ("batch_size", "log_every", "fps_images")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"train config: {name} must be >= 1, got {getattr(self, name)}")
        for name in ("max_iter", "epochs", "warmup_iters", "workers", "eval_every", "ckpt_every"):
            if getattr(self, name) < 0:
                raise ValueError(f"train config: {name} must be >= 0, got {getattr(self, name)}")
        if self.max_iter == 0 and self.epochs == 0:
            raise ValueError("train config: set max_iter > 0 or epochs > 0")
        if self.lr <= 0 or not 0 < self.gamma <= 1 or not 0 < self.warmup_factor <= 1:
            raise ValueError(
                f"train config: need lr > 0, 0 < gamma <= 1 and 0 < warmup_factor <= 1 "
                f"(got lr={self.lr}, gamma={self.gamma}, warmup_factor={self.warmup_factor})"
            )
        if any(s <= 0 for s in self.lr_steps):
            raise ValueError(f"train config: lr_steps must be positive, got {list(self.lr_steps)}")
        self.lr_steps = tuple(float(s) for s in self.lr_steps)

    @classmethod
    def field_names(cls) -> list[str]:
        """The field names, in declaration order."""
        return [f.name for f in fields(cls)]


def resolve_device(device: str, local_rank: int = 0) -> torch.device:
    """``"auto"`` becomes ``cuda:<local_rank>`` when CUDA is available, else ``cpu``.

    Raises:
        ValueError: CUDA was asked for on a machine without it.
    """
    if device == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} but CUDA is not available here; use device=cpu or device=auto")
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device(f"cuda:{local_rank}")
    return dev


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
