"""The training loop: one short ``Trainer`` with hooks (minGPT's ``trainer.py``, detectron2's hooks).

The model follows torchvision's detection interface: in training mode ``model(images, targets)``
returns a dict whose ``loss_*`` entries the trainer sums (other entries are logged only). SGD with
momentum and weight decay, linear warm-up then step decay, optional gradient clipping, mixed
precision (``losslab.precision``: fp16 autocast with a GradScaler on CUDA, bf16 autocast and
channels-last on CPUs with native bf16), several processes through DDP.

Exact resume: the data order is a function of ``(seed, epoch)`` only (a seeded
``DistributedSampler``) and the position inside the epoch is saved with the weights, the
optimiser, the scheduler and the random states; a resumed run replays the same batches with the
same random numbers and ends with the same weights as an uninterrupted one. (With ``workers > 0``
the batches are still the same, but random augmentation inside worker processes is seeded per
epoch, so a resume mid-epoch draws different augmentations.)
"""

from __future__ import annotations

import logging
import random
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from losslab.config import config_to_dict
from losslab.engine import checkpoint as ckpt
from losslab.engine.config import TrainConfig, lr_factor
from losslab.engine.distributed import (
    all_reduce_mean,
    any_across_ranks,
    barrier,
    broadcast_object,
    get_rank,
    get_world_size,
    resolve_device,
    wrap_ddp,
)
from losslab.engine.hooks import CallbackHook, HookBase, default_hooks
from losslab.engine.sampler import ResumableSampler
from losslab.losses.factory import HybridLoss
from losslab.precision import resolve_precision

__all__ = ["NonFiniteLossError", "ResumableSampler", "Trainer", "build_optimizer", "seed_everything", "to_device"]

log = logging.getLogger("losslab.engine")


class NonFiniteLossError(RuntimeError):
    """Training failed: too many steps had a NaN or infinite loss or gradient (more than
    ``max_bad_steps`` in a row, or more than ``max_skipped_fraction`` of the run), or the weights
    ended non-finite. Such a run is no result: it is failed with this reason, never stored as done."""


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's (CPU and CUDA) global generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def to_device(obj: Any, device: torch.device) -> Any:
    """``obj`` with every tensor inside (dicts, lists, tuples) moved to ``device``."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device, non_blocking=device.type == "cuda")
    if isinstance(obj, dict):
        return {k: to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_device(v, device) for v in obj)
    return obj


def _image_ids(targets: Any) -> list[int]:
    """The ``image_id`` of each image of a batch (instance targets: a list of dicts; dense: a dict)."""
    if isinstance(targets, dict) and "image_id" in targets:
        ids = targets["image_id"]
        return [int(i) for i in (ids.tolist() if isinstance(ids, torch.Tensor) else ids)]
    if isinstance(targets, (list, tuple)):
        return [int(t["image_id"]) for t in targets if isinstance(t, dict) and "image_id" in t]
    return []


def build_optimizer(params: list[nn.Parameter], cfg: TrainConfig) -> torch.optim.Optimizer:
    """The optimiser ``cfg.optimizer`` names: SGD with ``momentum`` (the paper's) or AdamW, both
    at ``cfg.lr`` with ``cfg.weight_decay``."""
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


class Trainer:
    """Trains ``model`` on ``dataset`` for ``max_iter`` steps (or ``epochs``) with hooks.

    Args:
        model: a module whose training-mode call ``model(images, targets)`` returns loss terms.
        dataset: the training split; items are collated by ``collate_fn``.
        cfg: the trainer settings.
        collate_fn: builds ``(images, targets)`` from a list of items (default: torch's).
        run_dir: where ``metrics.csv`` and ``checkpoints/last.pt`` go (None: nothing is written).
        config: the plain config dict stored in checkpoints (default: ``cfg`` as a dict).
        device: overrides ``cfg.device``.
        progress: show a rich progress bar.

    Shape:
        images: ``(B, 3, S, S)`` per process, B = ``cfg.batch_size``.
    """

    def __init__(
        self,
        model: nn.Module,
        dataset: Dataset,
        cfg: TrainConfig,
        *,
        collate_fn: Callable[[list], Any] | None = None,
        run_dir: str | Path | None = None,
        config: dict[str, Any] | None = None,
        device: torch.device | str | None = None,
        progress: bool = False,
    ):
        self.cfg = cfg
        self.rank, self.world_size = get_rank(), get_world_size()
        self.is_main = self.rank == 0
        local_rank = self.rank % max(torch.cuda.device_count(), 1)
        self.device = torch.device(device) if device is not None else resolve_device(cfg.device, local_rank)
        self.model = model.to(self.device)
        self.precision = resolve_precision(cfg.amp, self.device)
        if self.precision.channels_last:  # before DDP wraps the parameters
            self.model.to(memory_format=torch.channels_last)
        self.train_model = wrap_ddp(self.model, self.device, cfg.ddp_find_unused)
        self.sampler = ResumableSampler(dataset, self.world_size, self.rank, seed=cfg.seed)
        self.batches_per_epoch = self.sampler.num_samples // cfg.batch_size
        if self.batches_per_epoch == 0:
            raise ValueError(
                f"the training split has {len(dataset)} images, fewer than batch_size={cfg.batch_size} "
                f"x {self.world_size} process(es); lower batch_size or add data"
            )
        self._loader_gen = torch.Generator()  # keeps the loader off the global RNG, which resume restores
        self.loader = self._build_loader(dataset, collate_fn)
        self.max_iter = cfg.epochs * self.batches_per_epoch if cfg.epochs > 0 else cfg.max_iter
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = build_optimizer(self.params, cfg)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda it: lr_factor(it, self.max_iter, cfg))
        self.use_amp = self.precision.scaler  # float16: a GradScaler
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp)
        self.config = config if config is not None else {"train": config_to_dict(cfg)}
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.checkpoint_path = self.run_dir / "checkpoints" / "last.pt" if self.run_dir else None
        self.iter = self.epoch = self.batch_in_epoch = 0
        self.skipped_steps = self.consecutive_bad = 0
        self.train_seconds = 0.0
        self.last_log: dict[str, Any] = {}
        self.last_skip: dict[str, Any] = {}
        self.logged_this_step = False
        self._data_iter: Iterator | None = None
        self._window = [0, 0.0]  # images and seconds since the last logged step
        self.hooks: list[HookBase] = []
        self.last_eval: dict[str, Any] | None = None  # the latest periodic evaluation (EvalHook)
        # hybrid losses whose weights are schedules of training progress (``bce + ramp(0, 1)*boundary``)
        self._scheduled = [m for m in model.modules() if isinstance(m, HybridLoss) and m.scheduled_weights()]
        self.schedule_weights: dict[str, float] = {}
        if self.run_dir is not None and self.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        self.register_hooks(default_hooks(self.run_dir, cfg.ckpt_every, progress))

    def _build_loader(self, dataset: Dataset, collate_fn: Callable[[list], Any] | None) -> DataLoader:
        """Full batches in the resumable sampler's order; workers seeded from ``self._loader_gen``."""
        return DataLoader(
            dataset,
            batch_size=self.cfg.batch_size,
            sampler=self.sampler,
            drop_last=True,
            collate_fn=collate_fn,
            num_workers=self.cfg.workers,
            pin_memory=self.device.type == "cuda",
            generator=self._loader_gen,
        )

    # -- hooks -----------------------------------------------------------------------------------
    def register_hooks(self, hooks: list[HookBase]) -> None:
        """Append hooks; they run in registration order."""
        self.hooks.extend(hooks)

    def add_callback(self, event: str, fn: Callable[[Trainer], None], all_ranks: bool = False) -> None:
        """minGPT style: call ``fn(trainer)`` at ``event`` (before_train, after_step, after_skip, after_train)."""
        self.hooks.append(CallbackHook(event, fn, all_ranks))

    def _call(self, event: str) -> None:
        for hook in self.hooks:
            if self.is_main or hook.all_ranks:
                getattr(hook, event)(self)

    # -- the loop --------------------------------------------------------------------------------
    def train(self, resume_from: str | Path | dict[str, Any] | None = None) -> dict[str, Any]:
        """Run until ``max_iter``; resume from a checkpoint first if given.

        Args:
            resume_from: a checkpoint file, or a state already read from one (``load_resumable``).

        Returns:
            ``{"iterations", "skipped_steps", "train_seconds", "epoch"}``.

        Raises:
            NonFiniteLossError: more than ``cfg.max_bad_steps`` consecutive non-finite steps, more
                than ``cfg.max_skipped_fraction`` of the run's steps skipped, or non-finite weights
                at the end.
        """
        was_deterministic = torch.are_deterministic_algorithms_enabled()
        if resume_from is not None:
            self.load_checkpoint(resume_from)
        else:
            seed_everything(self.cfg.seed + self.rank)
        if self.cfg.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.benchmark = False
        self._data_iter = None
        try:
            self._call("before_train")
            while self.iter < self.max_iter:
                self.run_step()
                self._call("after_step")
            self._check_weights_finite()  # before after_train: a broken model is never checkpointed
            self._call("after_train")
        finally:
            for hook in self.hooks:  # also when training fails: live displays stop, files close
                hook.close()
            torch.use_deterministic_algorithms(was_deterministic)
        return self.summary()

    def summary(self) -> dict[str, Any]:
        """Where training stands: iterations done, steps skipped, seconds spent, current epoch."""
        return {
            "iterations": self.iter,
            "skipped_steps": self.skipped_steps,
            "train_seconds": self.train_seconds,
            "epoch": self.epoch,
        }

    def _next_batch(self) -> Any:
        if self._data_iter is None:
            self._start_epoch()
        try:
            batch = next(self._data_iter)
        except StopIteration:
            self.epoch, self.batch_in_epoch = self.epoch + 1, 0
            self._start_epoch()
            batch = next(self._data_iter)
        self.batch_in_epoch += 1
        return batch

    def _start_epoch(self) -> None:
        self.sampler.set_epoch(self.epoch)
        self.sampler.start = self.batch_in_epoch * self.cfg.batch_size
        # worker seeds come from this generator: a function of (seed, epoch) like the order
        self._loader_gen.manual_seed(self.cfg.seed * 1_000_003 + self.epoch)
        self._data_iter = iter(self.loader)

    def run_step(self) -> None:
        """One optimiser step (or a skipped one when the loss is not finite)."""
        t0 = time.perf_counter()
        images, targets = self._next_batch()
        images, targets = to_device(images, self.device), to_device(targets, self.device)
        if self.precision.channels_last and isinstance(images, torch.Tensor) and images.dim() == 4:
            images = images.contiguous(memory_format=torch.channels_last)
        self.train_model.train()
        if self._scheduled:  # progress 0 at the first step, 1 at the last
            t = self.iter / max(self.max_iter - 1, 1)
            self.schedule_weights = {}
            for loss in self._scheduled:
                loss.set_progress(t)
                self.schedule_weights.update(loss.scheduled_weights())
        with self.precision.autocast():
            out = self.train_model(images, targets)
        terms = {k: v for k, v in out.items() if k.startswith("loss_")}
        if not terms:
            raise ValueError(f"the model returned no 'loss_*' terms in training mode (keys: {sorted(out)})")
        total = sum(v.float() for v in terms.values())
        lr = self.optimizer.param_groups[0]["lr"]
        self.optimizer.zero_grad(set_to_none=True)
        if any_across_ranks(not bool(torch.isfinite(total)), self.device):
            self._skip_step(targets, terms)
        else:
            self.scaler.scale(total).backward()
            grad_ok = True
            if self.cfg.grad_clip > 0:
                self.scaler.unscale_(self.optimizer)
                norm = torch.nn.utils.clip_grad_norm_(self.params, self.cfg.grad_clip)
                # with a scaler the step is skipped by the scaler itself on inf/nan gradients
                grad_ok = self.use_amp or bool(torch.isfinite(norm))
            elif self.precision.dtype is not None and not self.use_amp:
                # bf16 has no GradScaler to skip a step with inf/nan gradients: check them as it does
                norm = torch.nn.utils.get_total_norm([p.grad for p in self.params if p.grad is not None])
                grad_ok = bool(torch.isfinite(norm))
            if grad_ok:
                self.scaler.step(self.optimizer)
                self.scaler.update()
                self.consecutive_bad = 0
            else:
                self.optimizer.zero_grad(set_to_none=True)
                self._skip_step(targets, {"grad_norm": norm})
        with warnings.catch_warnings():
            # a skipped first step would make torch warn that the scheduler stepped first
            warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step", category=UserWarning)
            self.scheduler.step()
        self.iter += 1
        seconds = time.perf_counter() - t0
        self.train_seconds += seconds
        n_images = images.shape[0] * self.world_size if isinstance(images, torch.Tensor) else 0
        self._window = [self._window[0] + n_images, self._window[1] + seconds]
        self._log_step(lr, terms, total, out)

    def _log_step(self, lr: float, terms: dict, total: torch.Tensor, out: dict) -> None:
        it = self.iter
        self.logged_this_step = it % self.cfg.log_every == 0 or it == self.max_iter or it == 1
        if not self.logged_this_step:
            return
        values = {k: float(v.detach()) for k, v in terms.items()}
        values["total"] = float(total.detach())
        for k, v in out.items():  # extra, logged-only scalars (number of positives, ...)
            if not k.startswith("loss_") and isinstance(v, torch.Tensor) and v.numel() == 1:
                values[k] = float(v.detach())
        values = all_reduce_mean(values, self.device)
        images, seconds = self._window
        self._window = [0, 0.0]
        self.last_log = {
            "iteration": it,
            "lr": lr,
            **{k: values[k] for k in terms},
            "total": values["total"],
            "images_per_s": images / seconds if seconds > 0 else 0.0,
            "time": self.train_seconds,
            **{k: v for k, v in values.items() if k not in terms and k != "total"},
            **{f"weight/{k}": v for k, v in self.schedule_weights.items()},
        }

    def _skip_step(self, targets: Any, terms: dict[str, torch.Tensor]) -> None:
        """Count a step whose loss (or gradient) was not finite and tell the hooks (``after_skip``)."""
        self.skipped_steps += 1
        self.consecutive_bad += 1
        ids = _image_ids(targets)
        shown = {k: float(v.detach()) for k, v in terms.items()}
        self.last_skip = {"iteration": self.iter + 1, "image_ids": ids, "terms": shown}
        log.warning(
            "non-finite loss at iteration %d (%s) on images %s: step skipped (%d in a row, %d in total)",
            self.iter + 1,
            shown,
            ids,
            self.consecutive_bad,
            self.skipped_steps,
        )
        self._call("after_skip")
        hint = "Lower lr, set grad_clip, or check these images' annotations."
        if self.consecutive_bad > self.cfg.max_bad_steps:
            raise NonFiniteLossError(
                f"{self.consecutive_bad} consecutive steps had a non-finite loss (limit max_bad_steps="
                f"{self.cfg.max_bad_steps}); last at iteration {self.iter + 1} on images {ids}, terms "
                f"{shown}. {hint}"
            )
        # Fails as soon as the run can no longer stay under the limit: the count only grows.
        allowed = self.cfg.max_skipped_fraction * self.max_iter
        if self.skipped_steps > allowed:
            raise NonFiniteLossError(
                f"{self.skipped_steps} of the run's {self.max_iter} steps were skipped for a non-finite loss "
                f"or gradient, more than max_skipped_fraction={self.cfg.max_skipped_fraction:g} allows "
                f"({allowed:g}): the run learned from too few of its steps. Last at iteration "
                f"{self.iter + 1} on images {ids}, terms {shown}. {hint}"
            )

    def _check_weights_finite(self) -> None:
        """Raise ``NonFiniteLossError`` naming the first parameter or buffer that is NaN or infinite."""
        for kind, named in (("parameter", self.model.named_parameters()), ("buffer", self.model.named_buffers())):
            for name, tensor in named:
                if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                    raise NonFiniteLossError(
                        f"after {self.iter} steps ({self.skipped_steps} skipped) the model's {kind} {name!r} "
                        f"holds NaN or infinite values: the run diverged and is no result. Lower lr or set "
                        "grad_clip."
                    )

    # -- evaluation and checkpoints --------------------------------------------------------------
    def run_evaluation(self, eval_fn: Callable[[nn.Module], dict]) -> dict:
        """``eval_fn(model)`` on rank 0 in eval mode without gradients, shared with every rank.

        The random states are restored afterwards so evaluating does not alter training.
        """
        rng = ckpt.capture_rng_state()
        was_training = self.model.training
        self.model.eval()
        metrics = None
        try:
            if self.is_main:
                with torch.no_grad():
                    metrics = eval_fn(self.model)
        finally:
            self.model.train(was_training)
            ckpt.restore_rng_state(rng)
        barrier()
        return broadcast_object(metrics)

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly: weights, optimiser, schedule, position, RNG."""
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.use_amp else {},
            "iteration": self.iter,
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "max_iter": self.max_iter,
            "skipped_steps": self.skipped_steps,
            "train_seconds": self.train_seconds,
            "world_size": self.world_size,
            "rng": ckpt.capture_rng_state(),
            "config": self.config,
        }

    def save_checkpoint(self, path: str | Path | None = None) -> Path | None:
        """Write the state atomically (rank 0 only) to ``path`` or ``run_dir/checkpoints/last.pt``."""
        path = Path(path) if path is not None else self.checkpoint_path
        if path is None or not self.is_main:
            return None
        return ckpt.save_checkpoint(path, self.state_dict())

    def load_checkpoint(self, source: str | Path | dict[str, Any]) -> None:
        """Restore a state written by ``save_checkpoint`` (weights, optimiser, position, RNG), from
        its file or as already read (its ``"path"`` entry, if any, names the file in messages)."""
        state = source if isinstance(source, dict) else ckpt.load_checkpoint(source)
        path = state.get("path", "the checkpoint") if isinstance(source, dict) else source
        if "optimizer" not in state:
            raise ckpt.CheckpointError(
                f"{path} holds a finished run's weights only (a study keeps no optimiser state once a run is "
                "done): it can be evaluated but not resumed; train a new run"
            )
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.use_amp and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.iter = int(state["iteration"])
        self.epoch = int(state["epoch"])
        self.batch_in_epoch = int(state["batch_in_epoch"])
        self.skipped_steps = int(state.get("skipped_steps", 0))
        self.train_seconds = float(state.get("train_seconds", 0.0))
        if int(state.get("max_iter", self.max_iter)) != self.max_iter:
            log.warning(
                "%s was written for max_iter=%s, this run has %s: the schedule changes from here on",
                path,
                state.get("max_iter"),
                self.max_iter,
            )
            # the stored rate belongs to the old schedule; continue on the new one right away
            for group, base in zip(self.optimizer.param_groups, self.scheduler.base_lrs, strict=True):
                group["lr"] = base * lr_factor(self.iter, self.max_iter, self.cfg)
        if int(state.get("world_size", 1)) != self.world_size:
            log.warning(
                "%s was written with %s process(es), resuming with %s", path, state.get("world_size"), self.world_size
            )
        ckpt.restore_rng_state(state["rng"])
