"""Where a study's runs execute: in this process, in worker processes, or on a Ray cluster
(``ray_executor.py``). Every executor calls ``execute_run`` and hands its outcome back to the driver,
which alone writes the database.

An executor has ``capacity`` (runs in flight at once), ``submit(run_id, config, run_dir)`` and
``wait(timeout) -> [(run_id, outcome)]``; ``close(abort=False)`` releases it (``abort``: without
waiting for the runs in flight).
"""

from __future__ import annotations

import concurrent.futures as cf
import csv
import fcntl
import json
import multiprocessing
import os
import signal
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from losslab.losses.check import LossEquivalenceWarning

__all__ = [
    "InlineExecutor",
    "ProcessExecutor",
    "RayExecutor",
    "RunFn",
    "execute_run",
    "last_step",
    "read_metrics_csv",
    "run_folder_lock",
    "write_returned_files",
]

#: ``run_fn(config, run_dir, progress=...) -> result dict`` (``losslab.engine.run.run_experiment``).
RunFn = Callable[..., dict]

#: Columns of ``metrics.csv`` that hold the step number (the first one present wins).
STEP_COLUMNS = ("step", "iteration", "iter", "it")
#: Files an executor on another machine sends back (small ones; checkpoints stay where they are).
RETURNED_FILES = ("result.json", "eval.json", "metrics.csv", "config.yaml", "samples/*.png")


def _float(text: str) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def read_metrics_csv(path: str | Path) -> list[tuple[int, str, float]]:
    """The numeric columns of a ``metrics.csv`` as ``(step, column, value)`` rows.

    The step is the ``step`` (or ``iteration``) column, else the row number from 1. Empty cells and
    text are left out; a missing file gives no rows.
    """
    path = Path(path)
    if not path.is_file():
        return []
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        fields = reader.fieldnames or []
        step_col = next((c for c in STEP_COLUMNS if c in fields), None)
        rows: list[tuple[int, str, float]] = []
        for i, row in enumerate(reader, start=1):
            step_value = _float(row.get(step_col, "")) if step_col else None
            step = int(step_value) if step_value is not None else i
            for col in fields:
                if col == step_col or col is None:
                    continue
                value = _float(row.get(col) or "")
                if value is not None:
                    rows.append((step, col, value))
    return rows


def last_step(path: str | Path) -> int | None:
    """The step of the last row of a ``metrics.csv`` (reads only its tail), or None."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        with path.open("rb") as fh:
            header = fh.readline().decode(errors="replace").strip().split(",")
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 4096))
            lines = [ln for ln in fh.read().decode(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return None
    if len(lines) < 2 and (not lines or lines[-1].split(",") == header):
        return None
    last = lines[-1].split(",")
    col = next((header.index(c) for c in STEP_COLUMNS if c in header), None)
    value = _float(last[col]) if col is not None and col < len(last) else None
    return int(value) if value is not None else None


def _collect_files(run_dir: Path) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for pattern in RETURNED_FILES:
        for path in sorted(run_dir.glob(pattern)):
            if path.is_file() and path.stat().st_size < 8 * 1024 * 1024:
                files[path.relative_to(run_dir).as_posix()] = path.read_bytes()
    return files


#: How long a run waits for its folder to be free (a dying orphan of a killed driver lets go in
#: well under a second; anything longer is a live process training in that folder).
RUN_LOCK_WAIT_SECONDS = 30.0


@contextmanager
def run_folder_lock(run_dir: Path, wait_seconds: float = RUN_LOCK_WAIT_SECONDS) -> Iterator[None]:
    """Hold ``run_dir/.run.lock`` while training there, so two processes never share a run folder.

    Raises:
        RuntimeError: another process still holds the folder after ``wait_seconds`` (named by pid).
    """
    fd = os.open(run_dir / ".run.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + wait_seconds
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
                    raise RuntimeError(
                        f"run folder {run_dir} is in use by another process (pid {holder}) after "
                        f"{wait_seconds:.0f} s; stop it (kill {holder}) and run the study again"
                    ) from None
                time.sleep(0.2)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def execute_run(
    run_fn: RunFn, config: dict[str, Any], run_dir: str | Path, progress: bool = True, collect_files: bool = False
) -> dict[str, Any]:
    """Run one training + evaluation and package what the driver stores.

    Returns:
        ``{"status": "done", "result": {...}, "losses": [(step, term, value)], "wall_seconds": s}`` or
        ``{"status": "failed", "error": traceback, "wall_seconds": s}``; with ``collect_files`` also
        ``"files": {relative path: bytes}`` (for executors on other machines).
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    try:
        if config.get("plugins"):  # in every process that trains, before the run resolves anything
            from losslab.plugins import load_plugins

            load_plugins(config["plugins"])
        with run_folder_lock(run_dir), warnings.catch_warnings():
            # The study states each loss equivalence once, in its notes; each run need not repeat it.
            warnings.simplefilter("ignore", LossEquivalenceWarning)
            returned = run_fn(dict(config), run_dir, progress=progress)
        result: dict[str, Any] = {}
        result_file = run_dir / "result.json"
        if result_file.is_file():
            result = json.loads(result_file.read_text())
        result.update(returned or {})
        if not result:
            raise ValueError(f"the run function returned nothing and wrote no {result_file}")
        outcome: dict[str, Any] = {
            "status": "done",
            "result": result,
            "losses": read_metrics_csv(run_dir / "metrics.csv"),
        }
    except Exception:
        outcome = {"status": "failed", "error": traceback.format_exc()}
    outcome["wall_seconds"] = time.perf_counter() - start
    if collect_files:
        outcome["files"] = _collect_files(run_dir)
    return outcome


class InlineExecutor:
    """Runs each run in this process, one at a time, when it is submitted (the trainer's own progress
    bar shows)."""

    capacity = 1
    live = False

    def __init__(self, run_fn: RunFn, progress: bool = True):
        self.run_fn = run_fn
        self.progress = progress
        self._done: list[tuple[str, dict[str, Any]]] = []

    def submit(self, run_id: str, config: dict[str, Any], run_dir: Path) -> None:
        self._done.append((run_id, execute_run(self.run_fn, config, run_dir, progress=self.progress)))

    def wait(self, timeout: float = 1.0) -> list[tuple[str, dict[str, Any]]]:
        done, self._done = self._done, []
        return done

    def close(self, abort: bool = False) -> None:
        pass


def _die_with_parent(parent_pid: int, poll_seconds: float = 0.5) -> None:
    """End this worker when the driver process ends, whatever killed it (SIGKILL included).

    On Linux the kernel sends SIGKILL on the parent's death (``PR_SET_PDEATHSIG``); everywhere a
    daemon thread also watches the parent id, which changes when the worker is re-parented.
    """
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent_pid:  # the driver died before the signal was armed
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(poll_seconds)
            if os.getppid() != parent_pid:
                os._exit(1)

    threading.Thread(target=watch, name="losslab-parent-watch", daemon=True).start()


def _init_worker(parent_pid: int) -> None:
    # No thread count here: each run sets its own (the trainer key ``threads``), so that its numbers
    # do not depend on how many workers run beside it.
    _die_with_parent(parent_pid)


class ProcessExecutor:
    """Runs up to ``workers`` runs at once in worker processes (spawned: no inherited threads); each
    run sets its own torch thread count (its ``threads`` key)."""

    live = True

    def __init__(self, run_fn: RunFn, workers: int):
        if workers < 1:
            raise ValueError(f"--workers must be at least 1, got {workers}")
        self.run_fn = run_fn
        self.capacity = workers
        self.pool = cf.ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(os.getpid(),),
        )
        self.futures: dict[cf.Future, str] = {}

    def submit(self, run_id: str, config: dict[str, Any], run_dir: Path) -> None:
        future = self.pool.submit(execute_run, self.run_fn, config, run_dir, False)
        self.futures[future] = run_id

    def wait(self, timeout: float = 1.0) -> list[tuple[str, dict[str, Any]]]:
        if not self.futures:
            return []
        done, _ = cf.wait(list(self.futures), timeout=timeout, return_when=cf.FIRST_COMPLETED)
        out = []
        for future in done:
            run_id = self.futures.pop(future)
            try:
                out.append((run_id, future.result()))
            except Exception:
                out.append((run_id, {"status": "failed", "error": traceback.format_exc(), "wall_seconds": None}))
        return out

    def close(self, abort: bool = False) -> None:
        if abort:
            # Interrupted: stop the workers now; their runs resume from their checkpoints next time.
            for proc in list(getattr(self.pool, "_processes", {}).values()):
                proc.terminate()
        self.pool.shutdown(wait=not abort, cancel_futures=True)


def write_returned_files(files: dict[str, bytes], run_dir: Path) -> None:
    """Write the files a remote run sent back, where the driver has none of its own."""
    for rel, data in files.items():
        target = run_dir / rel
        if target.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(target.suffix + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(target)


# ---- Ray (an optional extra: `pip install -e '.[ray]'`): one run per Ray task. Each task runs
# ``execute_run`` on a worker and sends back the outcome with the run's small files (result, metrics,
# samples), so the driver, which alone writes ``study.db``, has everything even when the workers share
# no file system with it; one GPU each where the cluster has GPUs, one CPU each otherwise.


class RayExecutor:
    """Submits runs to Ray.

    Args:
        run_fn: the run function (pickled to the workers).
        address: the cluster (``"auto"``, ``"ray://host:10001"``); None starts or joins a local
            instance. If Ray is already initialised in this process, that instance is used.
        max_in_flight: runs at once; by default the cluster's GPUs, or its CPUs when it has none.
    """

    live = True

    def __init__(self, run_fn: RunFn, address: str | None = None, max_in_flight: int | None = None):
        try:
            import ray
        except ImportError:
            raise ValueError(
                "--executor ray needs Ray: pip install -e '.[ray]' in a clone, pip install 'losslab[ray]' "
                "otherwise (or use --executor local)"
            ) from None
        self.ray = ray
        self._owns = not ray.is_initialized()
        if self._owns:
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0))
        cpus = max(1, int(resources.get("CPU", 1)))
        self.gpus_per_run = 1 if gpus else 0
        self.capacity = max_in_flight or (gpus or cpus)
        self.run_fn = run_fn
        self._task = ray.remote(num_gpus=self.gpus_per_run, num_cpus=1, max_retries=0)(execute_run)
        self.refs: dict[Any, str] = {}

    def submit(self, run_id: str, config: dict[str, Any], run_dir: Path) -> None:
        ref = self._task.remote(self.run_fn, config, str(run_dir), False, True)
        self.refs[ref] = run_id

    def wait(self, timeout: float = 1.0) -> list[tuple[str, dict[str, Any]]]:
        if not self.refs:
            return []
        ready, _ = self.ray.wait(list(self.refs), num_returns=1, timeout=timeout)
        out = []
        for ref in ready:
            run_id = self.refs.pop(ref)
            try:
                out.append((run_id, self.ray.get(ref)))
            except Exception:
                out.append((run_id, {"status": "failed", "error": traceback.format_exc(), "wall_seconds": None}))
        return out

    def close(self, abort: bool = False) -> None:
        for ref in list(self.refs):
            self.ray.cancel(ref, force=True)
        self.refs.clear()
        if self._owns:
            self.ray.shutdown()
