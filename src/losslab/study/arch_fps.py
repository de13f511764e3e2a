"""FPS once per distinct architecture, after a study's runs, in a quiet process.

A run's FPS does not depend on its training loss, and a run timed beside another worker's training is
timed under load. So after the runs, the study's own process (no worker left) loads one trained
checkpoint per architecture, times it on the validation images, and that number becomes the ``fps``
of every done run of the architecture (``StudyStore.save_architecture_fps``).

Two runs share an architecture when their preset, model config (every key but the loss terms), input
size, device and ``amp`` are the same.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from losslab.config import config_to_dict
from losslab.engine.config import RunConfig, resolve_run_config
from losslab.study.spec import canonical_json
from losslab.study.store import StudyStore

__all__ = ["ARCH_FPS_IMAGES", "FPS_INPUT_IMAGES", "architecture_key", "describe", "measure_architectures"]

#: Timed single-image calls per architecture (the median is taken over them; YOLACT times 100s).
ARCH_FPS_IMAGES = 100
#: Validation images the timed calls cycle through (real inputs: NMS cost follows the detections).
FPS_INPUT_IMAGES = 8


def architecture_key(run: RunConfig) -> str:
    """What makes two runs' inference cost the same: ``{"preset", "model", "device", "amp"}`` as JSON,
    where ``model`` is the resolved model config without its loss keys (any key with ``loss`` in it).

    Args:
        run: a run's resolved config (``engine.config.resolve_run_config``).
    """
    model = {k: v for k, v in config_to_dict(run.model).items() if "loss" not in k}
    return canonical_json({"preset": run.train.model, "model": model, "device": run.train.device, "amp": run.train.amp})


def _measure_one(run_dir: Path, run: RunConfig, images: int) -> dict[str, Any]:
    """Time the trained model of ``run_dir`` on its validation images (batch 1, torch's threads)."""
    import torch

    from losslab.engine.datasets import build_split, dataset_root
    from losslab.engine.distributed import resolve_device
    from losslab.engine.fps import measure_fps
    from losslab.engine.inference import model_from_checkpoint

    device = resolve_device(run.train.device)
    model, _ = model_from_checkpoint(run_dir / "checkpoints" / "last.pt", device)
    size = model.config.input_size
    val_set, _ = build_split(dataset_root(run.train, run.task), "val", run.task, size, False)
    inputs = torch.stack([val_set[i][0] for i in range(min(FPS_INPUT_IMAGES, len(val_set)))])
    return measure_fps(model, size, device, n=images, images=inputs)


def _checkpoint(run: Mapping[str, Any]) -> Path:
    """The final checkpoint of a store's run row (a path that does not exist without a folder)."""
    return Path(run["run_dir"] or "/nonexistent") / "checkpoints" / "last.pt"


def measure_architectures(
    store: StudyStore,
    images: int = ARCH_FPS_IMAGES,
    log: Callable[[str], None] = print,
    only_missing: bool = False,
    measure: Callable[[Path, RunConfig, int], dict[str, Any]] = _measure_one,
) -> list[dict[str, Any]]:
    """Measure each architecture of the store's done runs once and store it.

    Args:
        store: the study's store; its done runs' folders hold ``checkpoints/last.pt``.
        images: timed calls per architecture.
        log: where one line per architecture goes.
        only_missing: skip the architectures already stored for the same runs.
        measure: ``measure(run_dir, run, images) -> {"fps", "ms_median", "threads", "size",
            "device", ...}`` with the run's resolved config (the default loads the checkpoint and
            times it).

    Returns:
        The stored rows (``StudyStore.architecture_fps``) of the architectures measured now; an
        architecture whose runs have no checkpoint (e.g. a remote executor kept them) keeps its runs'
        own FPS and is reported through ``log``, as is one whose measurement fails.
    """
    groups: dict[str, list[dict[str, Any]]] = {}
    resolved: dict[str, RunConfig] = {}  # each run's config, resolved once
    for run in store.runs("done"):
        resolved[run["run_id"]] = resolve_run_config(run["config"])
        groups.setdefault(architecture_key(resolved[run["run_id"]]), []).append(run)
    known = {row["architecture"]: set(row["run_ids"]) for row in store.architecture_fps()}
    measured = []
    for n, (key, runs) in enumerate(groups.items(), 1):
        if only_missing and known.get(key) == {r["run_id"] for r in runs}:
            continue
        first = next((r for r in runs if _checkpoint(r).is_file()), None)
        name = runs[0]["config"].get("model", "?")
        if first is None:
            log(f"FPS {n}/{len(groups)} ({name}): no checkpoint of its runs here, their own FPS stays")
            continue
        try:
            info = measure(_checkpoint(first).parents[1], resolved[first["run_id"]], images)
        except Exception as exc:  # a failed timing must not lose the study's results
            log(f"FPS {n}/{len(groups)} ({name}): not measured ({type(exc).__name__}: {exc}), their own FPS stays")
            continue
        store.save_architecture_fps(
            key, [r["run_id"] for r in runs], {**info, "images": images, "measured_from": first["run_id"]}
        )
        log(
            f"FPS {n}/{len(groups)} ({name}, {len(runs)} runs): {info['fps']:.1f} "
            f"(median {info['ms_median']:.2f} ms over {images} images, {info['threads']} threads)"
        )
        measured.append(key)
    return [row for row in store.architecture_fps() if row["architecture"] in measured]


def describe(rows: list[dict[str, Any]]) -> str:
    """How the architectures' FPS were measured, in one sentence (for the report)."""
    if not rows:
        return ""
    parts = sorted({f"{r['images']} images at batch 1, {r['threads']} threads, {r['size']} px, {r['device']}"
                    for r in rows})  # fmt: skip
    return (
        f"measured once per architecture ({len(rows)}) after every run had finished, in the study's own "
        f"process with nothing training beside it: {'; '.join(parts)}; every configuration of one "
        "architecture shows that number, since FPS does not depend on the training loss"
    )
