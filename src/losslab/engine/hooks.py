"""Hooks: everything around the training step (detectron2 ``HookBase``, minGPT callbacks).

A hook gets the trainer at ``before_train``, after every step (``after_step``), after a step that
was skipped for a non-finite loss (``after_skip``, before that step's ``after_step``), at
``after_train`` and, however training ends, at ``close``. The trainer keeps the latest step's
numbers in ``trainer.last_log`` (a dict: iteration, lr, each loss term, total, images_per_s, time)
and the latest skipped step in ``trainer.last_skip`` (iteration, image_ids, terms). Hooks run on
rank 0 only unless they set ``all_ranks = True``.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from losslab.config import format_seconds
from losslab.engine.checkpoint import atomic_write_text

if TYPE_CHECKING:
    from losslab.engine.train import Trainer

__all__ = [
    "EVENTS",
    "LINE_SECONDS",
    "CallbackHook",
    "CheckpointHook",
    "EvalHook",
    "HookBase",
    "MetricsCSVHook",
    "ProgressHook",
    "SkippedStepsCSVHook",
    "default_hooks",
]

#: The trainer's events, in the order of one run.
EVENTS = ("before_train", "after_step", "after_skip", "after_train")

log = logging.getLogger("losslab.engine")


class HookBase:
    """Override any of the three methods; the trainer calls them in registration order."""

    #: run this hook on every process, not only on rank 0
    all_ranks: bool = False

    def before_train(self, trainer: Trainer) -> None:
        """Called once before the first step (also when resuming)."""

    def after_step(self, trainer: Trainer) -> None:
        """Called after every step, with ``trainer.iter`` already counting it."""

    def after_skip(self, trainer: Trainer) -> None:
        """Called when a step was skipped (non-finite loss or gradient); see ``trainer.last_skip``."""

    def after_train(self, trainer: Trainer) -> None:
        """Called once when training ends normally."""

    def close(self) -> None:
        """Called once when training ends, normally or not: release what the hook holds."""


class CallbackHook(HookBase):
    """A hook from a plain function ``fn(trainer)`` bound to one event (minGPT's ``add_callback``)."""

    def __init__(self, event: str, fn: Callable[[Trainer], None], all_ranks: bool = False):
        if event not in EVENTS:
            raise ValueError(f"unknown event {event!r}; use one of {', '.join(EVENTS)}")
        self.event, self.fn, self.all_ranks = event, fn, all_ranks

    def _on(self, event: str, trainer: Trainer) -> None:
        if event == self.event:
            self.fn(trainer)

    def before_train(self, trainer: Trainer) -> None:
        self._on("before_train", trainer)

    def after_step(self, trainer: Trainer) -> None:
        self._on("after_step", trainer)

    def after_skip(self, trainer: Trainer) -> None:
        self._on("after_skip", trainer)

    def after_train(self, trainer: Trainer) -> None:
        self._on("after_train", trainer)


class MetricsCSVHook(HookBase):
    """Appends ``trainer.last_log`` to ``metrics.csv`` at every logged step.

    The file is opened, appended and closed per row, so a crash loses nothing already logged. The
    columns are fixed by the first row (or by the file's header when resuming); a resumed run first
    drops rows past its checkpoint's iteration, which the interrupted run logged but did not keep.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.columns: list[str] | None = None

    def before_train(self, trainer: Trainer) -> None:
        self.columns = _drop_rows_after(self.path, trainer.iter) or None

    def after_step(self, trainer: Trainer) -> None:
        if not trainer.logged_this_step:
            return
        row = trainer.last_log
        new_file = not self.path.is_file() or self.path.stat().st_size == 0
        if self.columns is None or new_file:
            self.columns = list(row)
        with open(self.path, "a", newline="") as fh:
            writer = csv.writer(fh)
            if new_file:
                writer.writerow(self.columns)
            writer.writerow([_fmt(row.get(c, "")) for c in self.columns])


def _fmt(value: Any) -> Any:
    return f"{value:.6g}" if isinstance(value, float) else value


def _drop_rows_after(path: Path, iteration: int) -> list[str]:
    """Rewrite the CSV ``path`` without the rows whose first column (an iteration) is past
    ``iteration``: what an interrupted run wrote after the checkpoint it resumes from, and is about
    to write again. Returns the header (``[]`` when there is no file or it is empty)."""
    if not path.is_file():
        return []
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    if not rows:
        return []
    kept = [r for r in rows[1:] if r and int(float(r[0])) <= iteration]
    if len(kept) != len(rows) - 1:  # a crash while rewriting leaves the old file, never half of it
        text = io.StringIO(newline="")
        csv.writer(text).writerows([rows[0], *kept])
        atomic_write_text(path, text.getvalue())
    return rows[0]


class SkippedStepsCSVHook(HookBase):
    """Appends each skipped step to ``skipped_steps.csv``: its iteration, image ids and loss terms,
    so the images behind a NaN can be looked at after the run. A resumed run first drops the rows
    past its checkpoint's iteration (those steps run again and are recorded again)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def before_train(self, trainer: Trainer) -> None:
        _drop_rows_after(self.path, trainer.iter)

    def after_skip(self, trainer: Trainer) -> None:
        skip = trainer.last_skip
        new_file = not self.path.is_file()
        with open(self.path, "a", newline="") as fh:
            writer = csv.writer(fh)
            if new_file:
                writer.writerow(["iteration", "image_ids", "terms"])
            writer.writerow([skip["iteration"], " ".join(map(str, skip["image_ids"])), repr(skip["terms"])])


class CheckpointHook(HookBase):
    """Writes ``trainer.checkpoint_path`` every ``every`` iterations and when training ends."""

    def __init__(self, every: int):
        self.every = every

    def after_step(self, trainer: Trainer) -> None:
        if self.every > 0 and trainer.iter % self.every == 0 and trainer.iter < trainer.max_iter:
            trainer.save_checkpoint()

    def after_train(self, trainer: Trainer) -> None:
        trainer.save_checkpoint()


class EvalHook(HookBase):
    """Calls ``eval_fn(model) -> {task: {metric: value}}`` every ``every`` iterations.

    The random states are put back afterwards, so evaluating does not change the training run.
    Each result is appended as a JSON line to ``history`` (if given) and kept in ``self.results``; a
    resumed run first drops the lines past its checkpoint's iteration (those evaluations run again).
    Runs on every process (the trainer evaluates on rank 0 and shares the result).
    """

    all_ranks = True

    def __init__(self, every: int, eval_fn: Callable[[Any], dict], history: str | Path | None = None):
        self.every, self.eval_fn = every, eval_fn
        self.history = Path(history) if history else None
        self.results: list[dict[str, Any]] = []

    def before_train(self, trainer: Trainer) -> None:
        if self.history is None or not trainer.is_main or not self.history.is_file():
            return
        lines = self.history.read_text(encoding="utf-8").splitlines()
        kept = [line for line in lines if line.strip() and json.loads(line)["iteration"] <= trainer.iter]
        if len(kept) != len(lines):
            atomic_write_text(self.history, "".join(line + "\n" for line in kept))

    def after_step(self, trainer: Trainer) -> None:
        if self.every > 0 and trainer.iter % self.every == 0 and trainer.iter < trainer.max_iter:
            metrics = trainer.run_evaluation(self.eval_fn)
            entry = {"iteration": trainer.iter, "metrics": metrics}
            self.results.append(entry)
            trainer.last_eval = entry  # for hooks after this one (TensorBoard)
            if self.history is not None and trainer.is_main:
                with open(self.history, "a") as fh:
                    fh.write(json.dumps(entry) + "\n")
            if trainer.is_main:
                log.info("eval at iteration %d: %s", trainer.iter, _headline(metrics))


def _headline(metrics: dict) -> str:
    parts = []
    for task, values in metrics.items():
        if isinstance(values, dict) and "AP" in values:
            parts.append(f"{task} AP {values['AP']:.2f}")
    return ", ".join(parts) or json.dumps(metrics)[:200]


#: Seconds between two progress lines when the output is not a terminal (a log file, a pipe).
LINE_SECONDS = 60.0


def _stats(row: dict[str, Any]) -> str:
    """``total=… class=… box=… 14.4 img/s`` from a logged row."""
    terms = " ".join(f"{k.removeprefix('loss_')}={v:.3g}" for k, v in row.items() if k.startswith("loss_"))
    return f"total={row['total']:.3g} {terms} {row['images_per_s']:.1f} img/s"


class ProgressHook(HookBase):
    """The run's progress with the loss terms, images/s and the ETA: a rich bar on a terminal, and
    otherwise (output to a file or a pipe) a plain line at most every ``line_seconds`` and at the end,
    so that a long run's log says how far it is.

    Args:
        description: the bar's label and each line's first word.
        line_seconds: the least time between two plain lines.
        console: a ``rich.console.Console`` to write to (default: rich's, on stdout).
    """

    def __init__(self, description: str = "train", line_seconds: float = LINE_SECONDS, console: Any = None):
        self.description = description
        self.line_seconds = float(line_seconds)
        self._console = console
        self._progress: Any = None
        self._task: Any = None
        self._plain: dict[str, float] | None = None  # start time, start iteration, last line time

    def before_train(self, trainer: Trainer) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        if self._console is None:
            from rich import get_console

            self._console = get_console()
        console: Console = self._console
        if not console.is_terminal:
            now = time.monotonic()
            self._plain = {"start": now, "start_iter": float(trainer.iter), "last": now}
            return
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            transient=False,
            console=console,
        )
        self._progress.start()
        self._task = self._progress.add_task(self.description, total=trainer.max_iter, completed=trainer.iter, stats="")

    def after_step(self, trainer: Trainer) -> None:
        if self._plain is not None:
            self._plain_line(trainer)
            return
        if self._progress is None:
            return
        if trainer.logged_this_step:
            self._progress.update(self._task, completed=trainer.iter, stats=_stats(trainer.last_log))
        else:
            self._progress.update(self._task, completed=trainer.iter)

    def _plain_line(self, trainer: Trainer) -> None:
        """A line such as ``train 1200/16000 (7.5 %) total=… 14.4 img/s 10:00 elapsed, ETA 2:03:20``."""
        assert self._plain is not None
        now, done, total = time.monotonic(), trainer.iter, trainer.max_iter
        if now - self._plain["last"] < self.line_seconds and done < total:
            return
        self._plain["last"] = now
        elapsed = now - self._plain["start"]
        steps = done - self._plain["start_iter"]
        eta = elapsed / steps * (total - done) if steps > 0 else None
        stats = _stats(trainer.last_log) + " " if trainer.last_log else ""
        line = (
            f"{self.description} {done}/{total} ({100.0 * done / max(total, 1):.1f} %) {stats}"
            f"{format_seconds(elapsed)} elapsed, ETA {format_seconds(eta) or '?'}"
        )
        self._console.print(line, highlight=False, markup=False, soft_wrap=True)

    def close(self) -> None:
        """Stop the live display (the trainer calls it however training ends)."""
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
        self._plain = None


def default_hooks(run_dir: Path | None, ckpt_every: int, progress: bool) -> list[HookBase]:
    """``metrics.csv``, ``skipped_steps.csv`` and checkpoints in ``run_dir`` (if any), a progress bar."""
    hooks: list[HookBase] = []
    if run_dir is not None:
        hooks += [MetricsCSVHook(run_dir / "metrics.csv"), SkippedStepsCSVHook(run_dir / "skipped_steps.csv")]
        hooks.append(CheckpointHook(ckpt_every))
    if progress:
        hooks.append(ProgressHook())
    return hooks
