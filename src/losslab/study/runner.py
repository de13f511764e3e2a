"""Run a study: every run of its grid once, resumable, with its results in ``DIR/study.db``.

``run_study(study, out_dir)`` records the spec and its runs, skips the runs that are done, puts runs
that a killed process left ``running`` back in the queue (the trainer resumes them from their last
checkpoint), runs the rest through an executor and stores each outcome in one transaction. A run that
fails is stored with its traceback and the study goes on. One process at a time drives a folder (a lock
file); workers never touch the database.

Run folders are ``DIR/runs/<run_id>`` (the id is a hash of the config, so a folder always belongs to the
same run).

After the runs, FPS is measured once per distinct architecture in this process, with no worker left
training (``study.arch_fps``): it becomes the ``fps`` of every run of that architecture.
"""

from __future__ import annotations

import fcntl
import math
import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from losslab.engine.config import DATA_FILE_KEYS, TrainConfig, resolve_run_config, synthetic_args
from losslab.study.arch_fps import ARCH_FPS_IMAGES, measure_architectures
from losslab.study.executors import InlineExecutor, ProcessExecutor, RunFn, last_step, write_returned_files
from losslab.study.selection import chosen_values, study_choices
from losslab.study.spec import RunSpec, StudySpec, canonical_json, validate_keys
from losslab.study.store import StudyStore, flatten_metrics, run_dir_of

__all__ = [
    "DATA_KEY",
    "default_run_fn",
    "planned_runs",
    "pregenerate_synthetic",
    "resolve_data",
    "run_dir_of",
    "run_study",
    "study_lock",
]

#: The trainer's config key for the dataset folder.
DATA_KEY = "data"
#: The stages of a study, in the order they run (``losslab.study.tuning``).
STAGES = ("tune", "verdict")


def default_run_fn() -> RunFn:
    """``losslab.engine.run.run_experiment``, imported only when a study really trains."""
    try:
        from losslab.engine.run import run_experiment
    except ImportError as exc:
        raise ValueError(f"the trainer (losslab.engine.run.run_experiment) is not available: {exc}") from None
    return run_experiment


def resolve_data(config: Mapping[str, Any]) -> dict[str, Any]:
    """The run config with its dataset folder and explicit data files made absolute (workers may
    run elsewhere).

    Raises:
        ValueError: a dataset folder or data file that does not exist (checked before any run).
    """
    out = dict(config)
    data = str(config.get(DATA_KEY, "synthetic"))
    if data != "synthetic":
        path = Path(data).expanduser()
        if not path.is_dir():
            raise ValueError(f"dataset path {data!r} is not a folder (`losslab data check {data}` says what it needs)")
        out[DATA_KEY] = str(path.resolve())
    for key in DATA_FILE_KEYS:
        value = str(config.get(key) or "")
        if value:
            path = Path(value).expanduser()
            if not path.exists():
                raise ValueError(f"{key}={value!r} does not exist")
            out[key] = str(path.resolve())
    return out


def pregenerate_synthetic(runs: list[RunSpec]) -> None:
    """Generate each synthetic dataset the runs need once, before parallel workers would race to."""
    from losslab.engine.datasets import synthetic_root  # loads torch: only when a study really trains

    done: set[str] = set()
    for run in runs:
        if run.config.get(DATA_KEY) != "synthetic":
            continue
        resolved = resolve_run_config(run.config)
        key = canonical_json([resolved.task, resolved.train.cache_dir, synthetic_args(resolved.train)])
        if key not in done:
            done.add(key)
            synthetic_root(resolved.train, resolved.task)


def iterations_of(config: Mapping[str, Any]) -> int | None:
    """A run's length in steps as the trainer will count it (for progress bars and the ETA): ``max_iter``
    (the trainer's default when unset), or ``epochs`` x batches per epoch where the config tells the
    training set's size (the synthetic data's ``synth_train``); ``None`` when only the data can tell.
    Single process: ``world_size`` is not known here."""
    defaults = TrainConfig()
    epochs = config.get("epochs") or 0
    if not epochs:
        return int(config.get("max_iter") or defaults.max_iter)
    if config.get("data", defaults.data) != "synthetic":
        return None
    images = int(config.get("synth_train") or defaults.synth_train)
    return int(epochs) * (images // int(config.get("batch_size") or defaults.batch_size)) or None


@contextmanager
def study_lock(out_dir: Path) -> Iterator[None]:
    """Hold ``DIR/.lock`` so that one process at a time drives a study (freed when it dies)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(out_dir / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ValueError(f"{out_dir} is in use by another `losslab study run`; wait for it to finish") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        yield
    finally:
        os.close(fd)


def _warn_oversubscribed(runs: list[RunSpec], workers: int, console: Console) -> None:
    """Say so when ``workers`` runs of ``threads`` threads each ask for more threads than there are cores."""
    threads = max((int(r.config.get("threads") or 0) for r in runs), default=0)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if threads and workers * threads > cores:
        console.print(
            f"[yellow]note:[/] {workers} workers x {threads} threads per run = {workers * threads} threads on "
            f"{cores} cores: the runs compete for the cores (their numbers do not change, only their speed)"
        )


def _make_executor(kind: str, run_fn: RunFn, workers: int, address: str | None, progress: bool) -> Any:
    if kind == "ray":
        from losslab.study.executors import RayExecutor

        return RayExecutor(run_fn, address=address, max_in_flight=workers if workers > 1 else None)
    if kind != "local":
        raise ValueError(f"--executor must be 'local' or 'ray', got {kind!r}")
    if workers > 1:
        return ProcessExecutor(run_fn, workers)
    return InlineExecutor(run_fn, progress=progress)


#: Seconds between two heartbeat lines when the output is not a terminal.
HEARTBEAT_SECONDS = 60.0


def run_text(run: RunSpec) -> str:
    """``"Dice lr=0.001 · seed 1000"``: a run's configuration, its tuned values and its seed."""
    tuned = " ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in run.tuned.items())
    return f"{run.label}{' ' + tuned if tuned and tuned not in run.label else ''} · seed {run.seed}"


def headline_metric(result: Mapping[str, Any] | None) -> str:
    """A finished run's headline number for a progress line: mask AP, else mask IoU, else nothing."""
    metrics = flatten_metrics(result or {})
    for key, name in (("segm.AP", "mask AP"), ("mask.IoU", "mask IoU")):
        if key in metrics and math.isfinite(metrics[key]):
            return f"{name} {metrics[key]:.2f}"
    return ""


class _StudyProgress:
    """The study-level progress: a live bar (with one bar per run in flight) when runs execute
    elsewhere, a printed bar between runs when the trainer's own bar owns the terminal, and plain
    lines when the output is not a terminal (``make study > log.txt``): one per finished run
    (configuration, seed, metric, wall) and a heartbeat with the ETA at most every minute."""

    def __init__(self, console: Console, total: int, done: int, live: bool, enabled: bool):
        self.console = console
        self.enabled = enabled
        self.plain = enabled and not console.is_terminal
        self.live = live and enabled and not self.plain
        self.last_line = time.time()
        self.total = total
        self.done = done
        self.durations: list[float] = []
        self.started = time.time()
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            disable=not self.live,
        )
        self.study_task = self.progress.add_task("study", total=total, completed=done)
        self.run_tasks: dict[str, Any] = {}

    def __enter__(self) -> _StudyProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def eta(self) -> float | None:
        """Seconds left: the wall time per run finished so far in this process (runs in parallel
        and a shared CPU included) times the runs left; ``None`` until a run has finished."""
        finished = len(self.durations)
        if not finished:
            return None
        return (time.time() - self.started) / finished * (self.total - self.done)

    def _eta_text(self) -> str:
        eta = self.eta()
        return time.strftime("%H:%M:%S", time.gmtime(eta)) if eta is not None else "unknown until a run ends"

    def _print(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False, soft_wrap=True)
        self.last_line = time.time()

    def started_run(self, run: RunSpec, run_dir: Path) -> None:
        if self.plain:
            self.run_tasks[run.run_id] = (None, run_dir)
        elif self.live:
            total = iterations_of(run.config)
            self.run_tasks[run.run_id] = (
                self.progress.add_task(escape(f"  {run.label} · seed {run.seed}"), total=total),
                run_dir,
            )
        elif self.enabled:
            eta = self.eta()
            eta_text = f", study ETA {time.strftime('%H:%M:%S', time.gmtime(eta))}" if eta is not None else ""
            width = 30
            filled = int(width * self.done / max(1, self.total))
            bar = "█" * filled + "░" * (width - filled)
            self.console.rule(
                f"[bold]study {bar} {self.done}/{self.total}{eta_text}[/] · run {escape(run.label)} · seed {run.seed}"
            )

    def finished_run(
        self, run: RunSpec, wall: float | None, status: str = "done", result: Mapping[str, Any] | None = None
    ) -> None:
        self.done += 1
        if wall:
            self.durations.append(wall)
        self.progress.update(self.study_task, completed=self.done)
        if run.run_id in self.run_tasks:
            task, _ = self.run_tasks.pop(run.run_id)
            if task is not None:
                self.progress.remove_task(task)
        if self.plain:
            metric = headline_metric(result) if status == "done" else ""
            parts = [f"[{self.done}/{self.total}] {status} {run_text(run)}", metric]
            parts += [f"{wall:.0f} s" if wall else "", f"study ETA {self._eta_text()}"]
            self._print(" · ".join(p for p in parts if p))

    def poll(self) -> None:
        if self.plain:
            if time.time() - self.last_line >= HEARTBEAT_SECONDS:
                elapsed = time.strftime("%H:%M:%S", time.gmtime(time.time() - self.started))
                self._print(
                    f"[{self.done}/{self.total}] {len(self.run_tasks)} running, {elapsed} elapsed, "
                    f"study ETA {self._eta_text()}"
                )
            return
        for task, run_dir in self.run_tasks.values():
            step = last_step(run_dir / "metrics.csv")
            if step is not None:
                self.progress.update(task, completed=step)


def run_study(
    study: StudySpec,
    out_dir: str | Path,
    run_fn: RunFn | None = None,
    executor: str = "local",
    workers: int = 1,
    address: str | None = None,
    progress: bool = True,
    retry_failed: bool = True,
    console: Console | None = None,
    fps_images: int = ARCH_FPS_IMAGES,
) -> dict[str, int]:
    """Run (or resume) a study in ``out_dir``.

    Args:
        study: the parsed spec.
        out_dir: the study folder; ``study.db`` and ``runs/`` go there.
        run_fn: ``run_fn(config, run_dir, progress=...) -> result``; default ``run_experiment``.
        executor: ``"local"`` or ``"ray"``.
        workers: local runs in parallel processes (1: in this process); for Ray, the most in flight.
            Each run uses its own ``threads`` (its config), whatever ``workers`` is.
        address: the Ray cluster (None: a local instance).
        progress: show progress bars.
        retry_failed: run again the runs that failed before.
        console: where progress goes.
        fps_images: timed images of the FPS measurement of each architecture after the runs (with
            the default ``run_fn`` only).

    Returns:
        ``{"total", "skipped", "done", "failed"}``: runs in the study, already done before, and done or
        failed now.

    Raises:
        ValueError: ``workers < 1``, a value a check refuses (with the default ``run_fn``), a folder
            that holds another study or is in use, or a missing dataset folder.
    """
    out_dir = Path(out_dir)
    console = console or Console(stderr=True)
    if workers < 1:
        raise ValueError(f"--workers must be at least 1, got {workers}")
    if run_fn is None:  # every value checked, with its key, before anything is written
        validate_keys(study)
    _warn_oversubscribed(study.tune_runs() + study.runs(), workers if executor == "local" else 1, console)
    with study_lock(out_dir):
        store = StudyStore(out_dir / "study.db")
        try:
            held = store.study()
            if held is not None and held["name"] != study.name:
                raise ValueError(
                    f"{out_dir} holds study {held['name']!r}, not {study.name!r}: give this study its own --out folder"
                )
            planned = planned_runs(study, store)
            store.save_study(study.name, study.to_dict(), planned)
            (out_dir / "study.yaml").write_text(study.to_yaml())
            store.reset_interrupted()
            wanted = ("pending", "failed") if retry_failed else ("pending",)
            status = {r["run_id"]: r["status"] for r in store.runs()}
            skipped = sum(1 for r in planned if status[r.run_id] not in wanted)
            summary = {"total": study.run_count(), "skipped": skipped, "done": 0, "failed": 0}
            for run in planned:  # a missing dataset folder fails now, not after the first run
                resolve_data(run.config)
            real_runs = run_fn is None
            run_fn = default_run_fn() if real_runs else run_fn
            ex = None
            try:
                with _StudyProgress(
                    console, summary["total"], skipped, executor == "ray" or workers > 1, progress
                ) as bar:
                    for stage in STAGES:
                        runs = planned_runs(study, store)  # a tuned study's verdict runs exist once tuning is done
                        store.save_study(study.name, study.to_dict(), runs)
                        status = {r["run_id"]: r["status"] for r in store.runs()}
                        todo = [r for r in runs if r.stage == stage and status[r.run_id] in wanted]
                        if not todo:
                            continue
                        if real_runs and (workers > 1 or executor == "ray"):
                            pregenerate_synthetic(todo)
                        ex = ex or _make_executor(executor, run_fn, workers, address, progress)
                        _drive(store, ex, todo, out_dir, summary, console, bar)
            except BaseException:
                if ex is not None:
                    ex.close(abort=True)  # Ctrl-C or a crash: do not wait for runs in flight
                raise
            if ex is not None:
                ex.close()
            if real_runs and (summary["done"] or ex is None):  # now that no worker trains beside it
                if summary["done"]:
                    console.print(f"measuring FPS once per architecture ({fps_images} images each) ...")
                # A study stopped between its last run and the FPS measurement measures what is missing.
                measure_architectures(store, fps_images, console.print, only_missing=not summary["done"])
            return summary
        finally:
            store.close()


def _slim(run_dir: Path, console: Console) -> None:
    """A done run never resumes: keep its weights only (``engine.slim``); a failure only warns."""
    from losslab.engine.slim import slim_run

    try:
        slim_run(run_dir)
    except (OSError, ValueError) as exc:
        console.print(f"[yellow]could not slim {escape(str(run_dir))}:[/] {escape(str(exc))}", soft_wrap=True)


def prune_study(out_dir: str | Path) -> tuple[int, int, int]:
    """Slim every done run of a study folder (``losslab study prune``): each keeps its weights only.

    Returns:
        ``(runs, bytes_before, bytes_after)`` of the runs' checkpoint folders.

    Raises:
        ValueError: no ``study.db`` in ``out_dir``, or the study is running (its lock is held).
    """
    from losslab.engine.slim import slim_run

    out_dir = Path(out_dir)
    if not (out_dir / "study.db").is_file():
        raise ValueError(f"{out_dir} holds no study.db: give a study folder")
    runs, before, after = 0, 0, 0
    with study_lock(out_dir):
        with StudyStore(out_dir / "study.db") as store:
            done = [r for r in store.runs() if r["status"] == "done" and r["run_dir"]]
        for run in done:
            b, a = slim_run(run["run_dir"])
            runs, before, after = runs + (b > 0), before + b, after + a
    return runs, before, after


def planned_runs(study: StudySpec, store: StudyStore) -> list[RunSpec]:
    """Every run the study can name now: its tuning runs, then the verdict runs of each configuration
    whose tuning has finished (all of them without a tuning stage)."""
    return study.unique_runs(chosen_values(study_choices(study, store)))


def _drive(
    store: StudyStore,
    ex: Any,
    todo: list[RunSpec],
    out_dir: Path,
    summary: dict[str, int],
    console: Console,
    bar: _StudyProgress,
) -> None:
    by_id = {r.run_id: r for r in todo}
    queue = list(todo)
    in_flight = 0
    while queue or in_flight:
        while queue and in_flight < ex.capacity:
            run = queue.pop(0)
            run_dir = run_dir_of(out_dir, run.run_id)
            store.mark_running(run.run_id, run_dir)
            bar.started_run(run, run_dir)
            ex.submit(run.run_id, resolve_data(run.config), run_dir)
            in_flight += 1
        for run_id, outcome in ex.wait(timeout=1.0):
            in_flight -= 1
            run_dir = run_dir_of(out_dir, run_id)
            if outcome.get("files"):
                write_returned_files(outcome["files"], run_dir)
            wall = outcome.get("wall_seconds")
            if outcome["status"] == "done":
                store.mark_done(run_id, outcome["result"], outcome.get("losses", ()), wall)
                summary["done"] += 1
                _slim(run_dir, console)
            else:
                store.mark_failed(run_id, outcome.get("error") or "unknown error", wall)
                summary["failed"] += 1
                last = (outcome.get("error") or "").strip().splitlines()[-1:] or ["?"]
                what = escape(f"{by_id[run_id].label} · seed {by_id[run_id].seed}")
                console.print(f"[red]run {what} failed:[/] {escape(last[0])}", soft_wrap=True)
            bar.finished_run(by_id[run_id], wall, outcome["status"], outcome.get("result"))
        bar.poll()
