"""``losslab study status DIR``: each run's state, progress and time, the flags of the runs that are
done (``losslab.study.flags``: still falling, steps skipped, collapsed), and the study's ETA."""

from __future__ import annotations

import time
from pathlib import Path

from rich.markup import escape
from rich.table import Table

from losslab.config import format_seconds
from losslab.study.executors import last_step
from losslab.study.flags import run_health
from losslab.study.runner import iterations_of
from losslab.study.store import StudyStore

__all__ = ["format_seconds", "status_table"]

_STYLE = {"done": "green", "failed": "red", "running": "yellow", "pending": "dim"}


def status_table(out_dir: str | Path) -> tuple[Table, str]:
    """The runs table and a one-line summary with the study's ETA.

    The ETA assumes the remaining runs take as long as the mean done run and run one at a time.

    Raises:
        ValueError: ``out_dir`` has no study database.
    """
    db = Path(out_dir) / "study.db"
    if not db.is_file():
        raise ValueError(f"{db} does not exist; start the study with `losslab study run NAME --out {out_dir}`")
    now = time.time()
    with StudyStore(db) as store:
        return _table(store, out_dir, now)


def _flags(store: StudyStore, run: dict) -> str:
    losses, metrics = store.losses(run["run_id"]), store.metrics(run["run_id"])
    health = run_health(run["run_id"], run["seed"], losses, metrics, run["run_dir"])
    return escape(", ".join(str(f) for f in health.flags()))


def _planned_count(info: dict) -> int:
    """How many runs the stored study makes in all (0 when its spec cannot be read)."""
    from losslab.study.spec import parse_study

    try:
        return parse_study(info["spec"]).run_count() if "spec" in info else 0
    except ValueError:
        return 0


def _table(store: StudyStore, out_dir: str | Path, now: float) -> tuple[Table, str]:
    info = store.study() or {"name": "?"}
    runs = store.runs()
    walls = [r["wall_seconds"] for r in runs if r["status"] == "done" and r["wall_seconds"]]
    mean_wall = sum(walls) / len(walls) if walls else None
    table = Table(title=f"study {info['name']} ({out_dir})")
    for col in ("run", "configuration", "stage", "seed", "state", "attempts", "progress", "time", "ETA", "flags"):
        table.add_column(col, overflow="fold")
    remaining = 0.0
    tuned = list(((info.get("spec") or {}).get("tune") or {}).get("grid") or {})  # shown beside the label
    for run in runs:
        status = run["status"]
        progress, elapsed, eta, flags = "", None, None, ""
        if status == "done":
            progress, elapsed = "100%", run["wall_seconds"]
            flags = _flags(store, run)
        elif status == "running":
            elapsed = now - run["started"] if run["started"] else None
            total = iterations_of(run["config"])
            step = last_step(Path(run["run_dir"]) / "metrics.csv") if run["run_dir"] else None
            if total and step:
                frac = min(1.0, step / total)
                progress = f"{100 * frac:.0f}% ({step}/{total})"
                eta = elapsed * (1 - frac) / frac if elapsed and frac > 0 else None
            eta = eta if eta is not None else mean_wall
            remaining += eta or 0.0
        elif status == "pending":
            eta = mean_wall
            remaining += eta or 0.0
        elif status == "failed":
            elapsed = run["wall_seconds"]
            progress = ((run["error"] or "").strip().splitlines() or [""])[-1][:60]
        style = _STYLE.get(status, "")
        label = run["label"] + "".join(f" {k}={run['config'].get(k)}" for k in tuned if k in run["config"])
        table.add_row(run["run_id"], label, run.get("stage") or "verdict", str(run["seed"]),
                      f"[{style}]{status}[/]", str(run["attempts"]),
                      progress, format_seconds(elapsed), format_seconds(eta), f"[yellow]{flags}[/]")  # fmt: skip
    counts: dict[str, int] = {}
    for run in runs:
        counts[run["status"]] = counts.get(run["status"], 0) + 1
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    planned = _planned_count(info)
    if planned > len(runs):  # a tuned study's verdict runs are named once its tuning is done
        summary += f"; {planned - len(runs)} verdict runs follow the tuning"
        remaining += (mean_wall or 0.0) * (planned - len(runs))
    # The runs left are shared by the runs in flight (--workers): each worker takes the next one.
    parallel = max(1, counts.get("running", 0))
    eta_text = f"; study ETA {format_seconds(remaining / parallel)}" if mean_wall and remaining else ""
    return table, f"{len(runs)} runs: {summary}{eta_text}"
