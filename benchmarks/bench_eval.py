"""evaluate_coco (faster-coco-eval) against pycocotools' COCOeval on the same random detections.

Prints, per IoU type, the wall time of each (best of --repeat runs, from in-memory dicts to the
summary: indexing, loadRes, evaluate, accumulate, summarize) and their ratio, then the metrics
of both side by side. Boundary AP has no pycocotools counterpart; its own time is printed.

    .venv/bin/python benchmarks/bench_eval.py --images 300
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "engine"))

from _coco_cases import pycocotools_eval, pycocotools_metrics, random_case

from losslab.engine.evaluate import METRIC_KEYS, evaluate_coco


def best_time(fn, repeat: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=300, help="number of images (default 300)")
    parser.add_argument("--size", type=int, default=320, help="largest image side (default 320)")
    parser.add_argument("--cats", type=int, default=3, help="number of categories (default 3)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per tool; the best is kept")
    parser.add_argument("--copies", type=int, default=5, help="extra lower-score copies per detection")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    gt, dets = random_case(args.seed, n_images=args.images, n_cats=args.cats, max_size=args.size)
    # Models keep many low-score candidates per image (YOLACT: up to 100): duplicates stand in.
    rng = random.Random(args.seed)
    dets += [{**d, "score": d["score"] * rng.random()} for d in dets for _ in range(args.copies)]
    print(f"{args.images} images, {len(gt['annotations'])} objects, {len(dets)} detections\n")
    print(f"{'iou_type':<9} {'pycocotools s':>14} {'evaluate_coco s':>16} {'speed-up':>9}")
    rows = {}
    for iou_type in ("segm", "bbox"):
        t_ref, ev = best_time(lambda t=iou_type: pycocotools_eval(gt, dets, t), args.repeat)
        t_ours, ours = best_time(lambda t=iou_type: evaluate_coco(gt, dets, (t,))[t], args.repeat)
        rows[iou_type] = (pycocotools_metrics(ev), ours)
        print(f"{iou_type:<9} {t_ref:>14.3f} {t_ours:>16.3f} {t_ref / t_ours:>8.2f}x")
    t_b, boundary = best_time(lambda: evaluate_coco(gt, dets, ("boundary",))["boundary"], args.repeat)
    print(f"{'boundary':<9} {'-':>14} {t_b:>16.3f} {'-':>9}")

    print(f"\n{'metric':<7}" + "".join(f" {t + ' ref':>10} {t + ' ours':>10}" for t in rows) + f" {'boundary':>10}")
    for key in METRIC_KEYS:
        cells = "".join(f" {ref[key]:>10.3f} {ours[key]:>10.3f}" for ref, ours in rows.values())
        print(f"{key:<7}{cells} {boundary[key]:>10.3f}")
    # both NaN (undefined: no object of that size) is agreement
    worst = max(abs(ref[k] - ours[k]) for ref, ours in rows.values() for k in METRIC_KEYS if ref[k] == ref[k])
    print(f"\nlargest |ours - pycocotools| over all metrics: {worst:.2e} (percent points)")


if __name__ == "__main__":
    main()
