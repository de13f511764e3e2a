"""How noisy is a study's validation set? Trained models scored on disjoint subsets of one large
synthetic validation set: the spread of mask AP over subsets of N images is the evaluation noise a
study with N validation images carries (beside the seeds'), for one model and for the difference
between two (paired by image, as a study compares them).

    .venv/bin/python benchmarks/bench_eval_noise.py RUN_A/checkpoints/last.pt RUN_B/checkpoints/last.pt

Prints, per subset size, the mean and standard deviation of each model's mask AP and of the
difference A - B over the subsets, and the ratio of each standard deviation to the smallest size's.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import torch

from losslab.data import build_dataset, collate_instances, ensure_synthetic, resolve_splits
from losslab.engine.evaluate import evaluate_model
from losslab.engine.inference import model_from_checkpoint


def _subset_json(gt: dict, keep: set[int], path: Path) -> Path:
    images = [i for i in gt["images"] if i["id"] in keep]
    annotations = [a for a in gt["annotations"] if a["image_id"] in keep]
    path.write_text(json.dumps({**gt, "images": images, "annotations": annotations}))
    return path


def _subset_aps(model, val, ids: list[int], gt: dict, size: int, input_size: int, tmp: Path) -> list[float]:
    aps = []
    for k in range(len(ids) // size):
        path = _subset_json(gt, set(ids[k * size : (k + 1) * size]), tmp / f"s{size}_{k}.json")
        splits = resolve_splits("", train_json=str(path), train_images=str(val.images), val_json=str(path),
                                val_images=str(val.images))  # fmt: skip
        dataset = build_dataset(splits, "val", "instance", input_size, False)
        aps.append(evaluate_model(model, dataset, "instance", "cpu", 8, collate_instances).metrics["segm"]["AP"])
    return aps


def _sd(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", nargs="+", help="one or two trained checkpoints (the second: the difference)")
    parser.add_argument("--val", type=int, default=480, help="validation images generated (default 480)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[40, 120], help="subset sizes (default 40 120)")
    parser.add_argument("--image-size", type=int, default=128, help="synthetic image size (default 128)")
    parser.add_argument("--seed", type=int, default=77, help="generator seed of the validation set (default 77)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    root = ensure_synthetic(None, task="instance", train=8, val=args.val, size=args.image_size, seed=args.seed)
    val = resolve_splits(str(root)).split("val")
    gt = json.loads(val.json.read_text())
    ids = [image["id"] for image in gt["images"]]
    scores: dict[str, dict[int, list[float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for ckpt in args.checkpoints[:2]:
            model, state = model_from_checkpoint(ckpt)
            size = int(state["config"]["model"]["input_size"])
            scores[ckpt] = {n: _subset_aps(model, val, ids, gt, n, size, Path(tmp)) for n in args.sizes}
    first = args.sizes[0]
    for name, by_size in scores.items():
        for n, aps in by_size.items():
            ratio = _sd(by_size[first]) / _sd(aps) if len(aps) > 1 else float("nan")
            print(f"{name}: {n} images x {len(aps)} subsets: AP {statistics.mean(aps):.2f} sd {_sd(aps):.2f} "
                  f"(sd at {first} / sd here: {ratio:.2f}x)")  # fmt: skip
    if len(scores) == 2:
        a, b = scores.values()
        for n in args.sizes:
            diff = [x - y for x, y in zip(a[n], b[n], strict=True)]
            print(
                f"difference A - B, {n} images x {len(diff)} subsets: {statistics.mean(diff):+.2f} sd {_sd(diff):.2f}"
            )


if __name__ == "__main__":
    main()
