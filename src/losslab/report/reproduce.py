"""How to get the study's numbers again: the command, the code (git commit, versions), the machine, the
config as tables, and a table of every run (time, plateau, flags, a link to its folder)."""

from __future__ import annotations

import os
import platform
import subprocess
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from losslab.config import format_seconds
from losslab.report.document import Grid, flags_text
from losslab.report.tables import StudyResults
from losslab.study.spec import parse_study

__all__ = ["command", "config_grid", "environment", "fps_conditions", "git_commit", "grid_axes", "runs_grid"]


def command(results: StudyResults, out_dir: Path) -> str:
    """The ``losslab study run`` command that runs this study again into ``out_dir`` (the built-in
    name where the stored spec is one, else the ``study.yaml`` the runner saved next to the results)."""
    from losslab.study.builtin import BUILTIN_STUDIES

    spec = results.spec
    folder = str(out_dir)
    if spec.name in BUILTIN_STUDIES:
        seeds = len(spec.seeds)
        builtin = parse_study(BUILTIN_STUDIES[spec.name], seeds=seeds)
        if builtin.to_dict() == spec.to_dict():
            default = parse_study(BUILTIN_STUDIES[spec.name])
            flag = "" if default.seeds == spec.seeds else f" --seeds {seeds}"
            return f"losslab study run {spec.name} --out {folder}{flag}"
    return f"losslab study run {Path(folder) / 'study.yaml'} --out {folder}"


def git_commit() -> str:
    """``"a73d3a3 (+ local changes)"`` of the source tree losslab runs from, or ``"unknown (...)"``."""
    import losslab

    here = str(Path(losslab.__file__).resolve().parent)

    def git(*args: str) -> str:
        done = subprocess.run(["git", "-C", here, *args], capture_output=True, text=True, timeout=10, check=True)
        return done.stdout.strip()

    try:
        head = git("rev-parse", "--short=12", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return "unknown (losslab is not running from a git checkout)"
    return head + (" (+ local changes)" if dirty else "")


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _when(seconds: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M %Z", time.localtime(seconds)) if seconds else "?"


def _run_values(results: StudyResults, key: str, default: Any = None) -> str:
    seen = []
    for run in results.runs:  # tune and verdict runs, as stored
        value = run["config"].get(key, default)
        if value not in seen:
            seen.append(value)
    return ", ".join("not set" if v is None else str(v) for v in seen)


def fps_conditions(results: StudyResults) -> str:
    """How FPS was measured: once per architecture after the runs (``study.arch_fps``), or else
    by each run, from the runs' configs and the trainer's defaults."""
    from losslab.engine.config import TrainConfig
    from losslab.study.arch_fps import describe

    rows = results.store.architecture_fps()
    if rows:
        return f"FPS {describe(rows)}; amp {_run_values(results, 'amp', TrainConfig().amp)}."
    d = TrainConfig()
    size = _run_values(results, "input_size", "the preset's")
    return (
        f"batch 1 at {size} px input, {_run_values(results, 'fps_images', d.fps_images)} timed images of the val "
        f"split, after training, in the process that trained the run (beside the other workers' training when a "
        f"study runs several), device {_run_values(results, 'device', d.device)}, amp "
        f"{_run_values(results, 'amp', d.amp)}. FPS does not depend on the training loss: differences between "
        "configurations of one model are timing noise."
    )


def environment(results: StudyResults, out_dir: Path) -> Grid:
    """The reproduce block as a two-column table."""
    info = results.store.study() or {}
    starts = [r["started"] for r in results.runs if r["started"]]
    ends = [r["finished"] for r in results.runs if r["finished"]]
    rows = [
        ["command", command(results, out_dir)],
        ["then", f"losslab study report {out_dir}"],
        ["losslab commit", f"{git_commit()} (the code that wrote this report)"],
        [
            "versions",
            f"losslab {_version('losslab')}, torch {_version('torch')}, torchvision "
            f"{_version('torchvision')}, Python {platform.python_version()}",
        ],
        [
            "dates",
            f"study created {_when(info.get('created'))}; runs {_when(min(starts, default=None))} to "
            f"{_when(max(ends, default=None))}; report {_when(time.time())}",
        ],
        [
            "machine",
            f"{_cpu()}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.release()} "
            "(where this report was written)",
        ],
        ["device", _device(results)],
        ["threads per run", _threads(results)],
        ["FPS", fps_conditions(results)],
    ]
    return Grid(["", ""], rows)


def _device(results: StudyResults) -> str:
    from losslab.engine.config import TrainConfig

    try:
        import torch

        cuda = "available" if torch.cuda.is_available() else "not available"
    except ImportError:
        cuda = "unknown"
    configured = _run_values(results, "device", TrainConfig().device)
    return f"{configured} (the run config's; auto: CUDA when available); CUDA {cuda} where this report was written"


#: Run config keys that may hold a run's torch thread count.
THREAD_KEYS = ("threads", "num_threads", "torch_threads")


def _threads(results: StudyResults) -> str:
    key = next((k for k in THREAD_KEYS if any(k in r["config"] for r in results.runs)), None)
    if key is None:
        return "not in the run config: each worker process gets the machine's CPUs divided by --workers"
    return f"{_run_values(results, key)} (the run config's {key!r})"


def config_grid(results: StudyResults) -> Grid:
    """The base config every run shares (the dataset included), key by key."""
    spec = results.spec
    rows = [["model", str(spec.model or "(a grid axis)")]]
    for kind, value in spec.dataset.items():
        args = ", ".join(f"{k}={v}" for k, v in value.items()) if isinstance(value, dict) else str(value)
        rows.append([f"dataset ({kind})", args or "defaults"])
    rows += [[key, _text(value)] for key, value in spec.config.items()]
    rows += [["seeds", ", ".join(map(str, spec.seeds))], ["baseline", spec.baseline]]
    if spec.tune is not None:
        rows += [[f"tuned: {key}", _text(values)] for key, values in spec.tune.grid.items()]
        rows += [["tuning seeds", _text(spec.tune.seeds)], ["tuning split", _text(spec.tune.dataset)]]
    rows += [["equivalence margin", f"±{spec.margin:g}"]]
    return Grid(["key", "value"], rows)


def grid_axes(results: StudyResults) -> Grid:
    """What each configuration sets on top of the base config."""
    rows = []
    for label, _, overrides in results.spec.configurations():
        rows.append([label, ", ".join(f"{k}={_text(v)}" for k, v in overrides.items())])
    return Grid(["configuration", "keys"], rows)


def _text(value: Any) -> str:
    return ", ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def runs_grid(results: StudyResults, out_dir: Path) -> Grid:
    """Every run: its state, times, plateau, flags, and a link to its folder."""
    header = ["run", "configuration", "stage", "lr", "seed", "status", "train time", "wall", "iterations",
              "skipped steps", "loss slope %/1k it [95 %]", "fall over last 20 %", "converged", "flags"]  # fmt: skip
    rows: list[list[str]] = []
    links = {}
    for run in results.runs:
        metrics = results.store.metrics(run["run_id"]) if run["status"] == "done" else {}
        health = results.health.get(run["run_id"])
        plateau = health.plateau if health else None
        slope = fall = converged = ""
        if plateau is not None and plateau.converged is not None:
            slope = f"{100 * plateau.slope:+.1f} [{100 * plateau.low:+.1f}, {100 * plateau.high:+.1f}]"
            fall = f"{100 * plateau.fall:.1f} %"
            converged = "yes" if plateau.converged else f"no: {plateau.state}"
        elif plateau is not None:
            converged = f"? ({plateau.points} points)"
        folder = Path(run["run_dir"]) if run["run_dir"] else out_dir / "runs" / run["run_id"]
        try:
            links[(len(rows), 0)] = folder.resolve().relative_to(out_dir.resolve()).as_posix() + "/"
        except ValueError:
            links[(len(rows), 0)] = folder.resolve().as_uri()
        rows.append([
            run["run_id"], run["label"], run.get("stage") or "verdict", _text(run["config"].get("lr", "")),
            str(run["seed"]), run["status"],
            format_seconds(metrics.get("train_seconds")), format_seconds(run["wall_seconds"]),
            _int(metrics.get("iterations")), str(health.skipped_steps) if health else "",
            slope, fall, converged, flags_text(health.flags()) if health else "",
        ])  # fmt: skip
    return Grid(header, rows, numeric=(3, 4, 6, 7, 8, 9, 10, 11), links=links, nowrap=True)


def _int(value: float | None) -> str:
    return "" if value is None else str(int(value))
