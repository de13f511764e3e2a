"""Random COCO ground truth and detections for the evaluation tests and benchmarks/bench_eval.py.

Detections are jittered copies of the objects (so every IoU threshold sees hits and misses) plus
pure false positives; some images have objects but no detections, others detections but no
objects; about one object in ten is a crowd region.
"""

from __future__ import annotations

import contextlib
import copy
import io

import numpy as np
import pycocotools.mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval


def rle_of(mask: np.ndarray) -> dict:
    """Compressed RLE with str counts of a (h, w) 0/1 mask."""
    r = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    r["counts"] = r["counts"].decode("ascii")
    return r


def random_blob(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """An axis-aligned rectangle, sometimes with a notch or an ellipse, so shapes are not all boxes."""
    m = np.zeros((h, w), np.uint8)
    bh, bw = int(rng.integers(2, max(3, h // 2))), int(rng.integers(2, max(3, w // 2)))
    y0, x0 = int(rng.integers(0, h - bh + 1)), int(rng.integers(0, w - bw + 1))
    if rng.random() < 0.4:
        yy, xx = np.mgrid[:h, :w]
        cy, cx = y0 + bh / 2, x0 + bw / 2
        m[((yy - cy) / (bh / 2)) ** 2 + ((xx - cx) / (bw / 2)) ** 2 <= 1] = 1
    else:
        m[y0 : y0 + bh, x0 : x0 + bw] = 1
        if rng.random() < 0.5:
            m[y0 : y0 + bh // 2, x0 : x0 + bw // 2] = 0
    if m.sum() == 0:
        m[y0, x0] = 1
    return m


def jitter(rng: np.random.Generator, m: np.ndarray) -> np.ndarray:
    """Shift a mask by a few pixels and flip a few border pixels: a plausible detection."""
    if rng.random() < 0.25:
        return m.copy()
    dy, dx = rng.integers(-2, 3, size=2)
    out = np.roll(np.roll(m, int(dy), axis=0), int(dx), axis=1)
    if rng.random() < 0.5:
        out = np.maximum(out, np.roll(out, 1, axis=int(rng.integers(0, 2))))
    return out if out.sum() else m


def random_case(
    seed: int, n_images: int = 12, n_cats: int = 2, max_size: int = 160, crowd: float = 0.1
) -> tuple[dict, list[dict]]:
    """``(gt, detections)`` with both bbox and RLE segmentation in every detection."""
    rng = np.random.default_rng(seed)
    images, anns, dets = [], [], []
    for img_id in range(1, n_images + 1):
        h, w = int(rng.integers(24, max_size)), int(rng.integers(24, max_size))
        images.append({"id": img_id, "height": h, "width": w, "file_name": f"{img_id}.png"})
        n_obj = int(rng.integers(0, 5)) if img_id % 5 else 0  # every 5th image has no object
        for _ in range(n_obj):
            m = random_blob(rng, h, w)
            r = rle_of(m)
            cat = int(rng.integers(1, n_cats + 1))
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": img_id,
                    "category_id": cat,
                    "segmentation": r,
                    "area": float(mask_utils.area(r)),
                    "bbox": mask_utils.toBbox(r).tolist(),
                    "iscrowd": int(rng.random() < crowd),
                }
            )
            if img_id % 7 == 0:  # every 7th image has no detection
                continue
            for _ in range(int(rng.integers(0, 3))):
                cat_d = cat if rng.random() < 0.85 else int(rng.integers(1, n_cats + 1))
                dets.append(_det(img_id, cat_d, jitter(rng, m), float(rng.random())))
        if img_id % 7:
            for _ in range(int(rng.integers(0, 3))):  # false positives
                dets.append(_det(img_id, int(rng.integers(1, n_cats + 1)), random_blob(rng, h, w), rng.random()))
    cats = [{"id": c, "name": f"c{c}"} for c in range(1, n_cats + 1)]
    return {"images": images, "annotations": anns, "categories": cats}, dets


def _det(img_id: int, cat: int, m: np.ndarray, score: float) -> dict:
    r = rle_of(m)
    return {
        "image_id": img_id,
        "category_id": cat,
        "segmentation": r,
        "bbox": mask_utils.toBbox(r).tolist(),
        "score": round(float(score), 6),
    }


def pycocotools_eval(gt: dict, dets: list[dict], iou_type: str, cls: type = COCOeval) -> COCOeval:
    """pycocotools' COCOeval run on copies (it writes into its inputs), silenced."""
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = copy.deepcopy(gt)
        coco_gt.createIndex()
        if dets:
            coco_dt = coco_gt.loadRes(copy.deepcopy(dets))
        else:  # pycocotools' loadRes fails on []: an empty result set built by hand
            coco_dt = COCO()
            coco_dt.dataset = {"images": gt["images"], "categories": gt["categories"], "annotations": []}
            coco_dt.createIndex()
        ev = cls(coco_gt, coco_dt, iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


def pycocotools_metrics(ev: COCOeval) -> dict[str, float]:
    """Our metric keys from a summarized pycocotools COCOeval: stats for the standard ones, the
    precision array per threshold (as summarize() does for AP50/AP75) for AP55 ... AP95; COCOeval's
    -1 ("undefined") as NaN, evaluate_coco's convention."""

    def pct(v: float) -> float:
        return float(v * 100.0) if v > -1 else float("nan")

    s = ev.stats
    out = {"AP": pct(s[0])}
    for t in range(10):
        p = ev.eval["precision"][t, :, :, 0, 2]
        out[f"AP{50 + 5 * t}"] = pct(float(np.mean(p[p > -1]))) if (p > -1).any() else float("nan")
    out.update({"APs": pct(s[3]), "APm": pct(s[4]), "APl": pct(s[5])})
    out.update({"AR1": pct(s[6]), "AR10": pct(s[7]), "AR100": pct(s[8])})
    return out
