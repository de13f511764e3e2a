"""Run a study's runs as Ray tasks: one GPU each where the cluster has GPUs, one CPU each otherwise.

Each task runs ``execute_run`` on a worker and sends back the outcome with the run's small files
(result, metrics, samples), so the driver, which alone writes ``study.db``, has everything even when
the workers share no file system with it. Ray is an optional extra (``pip install losslab[ray]``).
"""

from __future__ import annotations

import traceback
from pathlib import Path
from typing import Any

from losslab.study.executors import RunFn, execute_run

__all__ = ["RayExecutor"]


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
            raise ValueError("--executor ray needs Ray: pip install 'losslab[ray]' (or use --executor local)") from None
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
