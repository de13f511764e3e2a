"""TensorBoard event files of a run (the optional extra: ``pip install -e '.[tensorboard]'``).

With the trainer key ``tensorboard=true`` a run writes ``run_dir/tensorboard/``: every logged row's
numbers under ``train/`` (each loss term, a hybrid's weighted terms ``train/mask/<term>``, lr,
images/s), each periodic evaluation and the final one under ``eval/`` (``eval/segm/AP50``, ...). A
resumed run purges the events past its checkpoint, as ``metrics.csv`` drops its rows.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from losslab.engine.hooks import HookBase

if TYPE_CHECKING:
    from losslab.engine.train import Trainer

__all__ = ["MISSING", "TensorBoardHook", "metric_scalars", "summary_writer", "write_metrics"]

#: Why ``tensorboard=true`` cannot work here, or ``None``.
MISSING = (
    None
    if importlib.util.find_spec("tensorboard") is not None
    else "tensorboard=true needs the tensorboard package: pip install -e '.[tensorboard]' (or pip install tensorboard)"
)
#: ``trainer.last_log`` entries that are not plotted (the step is the x axis; time is wall clock).
_NOT_PLOTTED = ("iteration", "time")


def summary_writer(log_dir: str | Path, purge_step: int | None = None) -> Any:
    """torch's ``SummaryWriter`` on ``log_dir``.

    Raises:
        ValueError: the tensorboard package is not installed (with the install command).
    """
    if MISSING:
        raise ValueError(MISSING)
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(str(log_dir), purge_step=purge_step)


def metric_scalars(metrics: Mapping[str, Any], prefix: str = "eval") -> Iterator[tuple[str, float]]:
    """``{"segm": {"AP": 35.1}}`` -> ``("eval/segm/AP", 35.1)``, finite numbers only."""
    for key, value in metrics.items():
        tag = f"{prefix}/{key}"
        if isinstance(value, Mapping):
            yield from metric_scalars(value, tag)
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            yield tag, float(value)


def write_metrics(log_dir: str | Path, metrics: Mapping[str, Any], step: int) -> None:
    """Append one evaluation's numbers at ``step`` to the event files in ``log_dir``."""
    writer = summary_writer(log_dir)
    try:
        for tag, value in metric_scalars(metrics):
            writer.add_scalar(tag, value, step)
    finally:
        writer.close()


class TensorBoardHook(HookBase):
    """Writes every logged row (``train/...``) and each periodic evaluation (``eval/...``)."""

    def __init__(self, log_dir: str | Path):
        self.log_dir = Path(log_dir)
        self.writer: Any = None

    def before_train(self, trainer: Trainer) -> None:
        self.writer = summary_writer(self.log_dir, purge_step=trainer.iter or None)

    def after_step(self, trainer: Trainer) -> None:
        if self.writer is None:
            return
        if trainer.logged_this_step:
            row = trainer.last_log
            for key, value in row.items():
                if key not in _NOT_PLOTTED and isinstance(value, (int, float)) and math.isfinite(value):
                    self.writer.add_scalar(f"train/{key}", float(value), int(row["iteration"]))
        last_eval = getattr(trainer, "last_eval", None)
        if last_eval is not None and last_eval["iteration"] == trainer.iter:
            for tag, value in metric_scalars(last_eval["metrics"]):
                self.writer.add_scalar(tag, value, trainer.iter)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
