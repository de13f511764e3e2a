"""``losslab study tensorboard DIR``: a study's runs as TensorBoard event files, from what its store
already holds (old studies too), with an HParams table.

One folder per finished run, ``OUT/<configuration>/<stage>-seed<k>-<run id>``: its logged loss terms
under ``train/`` and its final metrics under ``eval/``, and an HParams entry whose parameters are the
configuration, the stage, the seed and every config key that differs between the study's runs (the
loss spec, the tuned learning rate, ...), and whose metrics are mask, box and boundary AP (or mask
IoU / Dice for dense models). ``tensorboard --logdir OUT`` opens it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from losslab.engine.tensorboard import summary_writer
from losslab.study.store import StudyStore

__all__ = ["HPARAM_METRICS", "export_study"]

#: Store metric -> HParams metric tag.
HPARAM_METRICS = {
    "segm.AP": "hparam/mask_AP",
    "bbox.AP": "hparam/box_AP",
    "boundary.AP": "hparam/boundary_AP",
    "mask.IoU": "hparam/mask_IoU",
    "mask.Dice": "hparam/mask_Dice",
}
_NOT_HPARAMS = ("seed", "data", "plugins")


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=+-]+", "_", text).strip("_") or "run"


def _hparam(value: Any) -> Any:
    """TensorBoard's HParams take numbers, strings and booleans."""
    return value if isinstance(value, (int, float, str, bool)) else json.dumps(value)


def _varying_keys(runs: list[dict[str, Any]]) -> list[str]:
    keys = sorted({k for r in runs for k in r["config"]} - set(_NOT_HPARAMS))
    return [k for k in keys if len({json.dumps(r["config"].get(k), sort_keys=True) for r in runs}) > 1]


def export_study(out_dir: str | Path, log_dir: str | Path | None = None) -> tuple[Path, int]:
    """Write the event files of every done run of the study in ``out_dir``.

    Returns:
        ``(log_dir, runs written)``; ``log_dir`` defaults to ``out_dir/tensorboard``.

    Raises:
        ValueError: no ``study.db`` in ``out_dir``, or the tensorboard package is missing.
    """
    out_dir = Path(out_dir)
    if not (out_dir / "study.db").is_file():
        raise ValueError(f"{out_dir} holds no study.db: give a study folder")
    target = Path(log_dir) if log_dir is not None else out_dir / "tensorboard"
    with StudyStore(out_dir / "study.db") as store:
        runs = store.runs("done")
        varying = _varying_keys(runs)
        for run in runs:
            folder = target / _safe(run["label"]) / f"{run['stage']}-seed{run['seed']}-{run['run_id']}"
            writer = summary_writer(folder)
            try:
                for name, points in store.losses(run["run_id"]).items():
                    for step, value in points:
                        if value is not None:
                            writer.add_scalar(f"train/{name}", value, step)
                metrics = {k: v for k, v in store.metrics(run["run_id"]).items() if v is not None}
                for key, value in metrics.items():
                    writer.add_scalar(f"eval/{key.replace('.', '/')}", value, 0)
                hparams = {"configuration": run["label"], "stage": run["stage"], "seed": run["seed"]}
                hparams.update({k: _hparam(run["config"].get(k)) for k in varying})
                scores = {tag: metrics[key] for key, tag in HPARAM_METRICS.items() if key in metrics}
                writer.add_hparams(hparams, scores, run_name=".")
            finally:
                writer.close()
    return target, len(runs)
