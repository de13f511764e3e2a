"""Tiny COCO datasets written into tmp folders: polygons, compressed and uncompressed RLE, a crowd
region and an image without annotations."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils


def _rle(mask: np.ndarray) -> dict:
    r = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": list(mask.shape), "counts": r["counts"].decode("ascii")}


def _uncompressed_rle(mask: np.ndarray) -> dict:
    flat = mask.astype(np.uint8).ravel(order="F")
    counts, current, run = [], 0, 0
    for v in flat:
        if v != current:
            counts.append(run)
            current, run = v, 0
        run += 1
    counts.append(run)
    return {"size": list(mask.shape), "counts": [int(c) for c in counts]}


def write_coco(root: Path, data: dict, images: dict[str, tuple[int, int]]) -> tuple[Path, Path]:
    """Write ``data`` as json and a random image of (h, w) per file name; returns (json, image dir)."""
    img_dir = root / "images"
    img_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name, (h, w) in images.items():
        cv2.imwrite(str(img_dir / name), rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
    ann = root / "instances.json"
    ann.write_text(json.dumps(data))
    return ann, img_dir


@pytest.fixture
def tiny_coco(tmp_path: Path) -> tuple[Path, Path, dict]:
    """Three images: a 40x60 with two polygons (categories 7 and 3), a 50x50 with a compressed
    RLE, an uncompressed RLE and a crowd region, and a 30x30 image with no annotation."""
    m2 = np.zeros((50, 50), np.uint8)
    m2[10:20, 5:25] = 1
    m3 = np.zeros((50, 50), np.uint8)
    m3[30:45, 30:48] = 1
    crowd = np.zeros((50, 50), np.uint8)
    crowd[0:8, 0:50] = 1
    data = {
        "images": [
            {"id": 1, "file_name": "a.png", "height": 40, "width": 60},
            {"id": 2, "file_name": "b.png", "height": 50, "width": 50},
            {"id": 5, "file_name": "empty.png", "height": 30, "width": 30},
        ],
        "categories": [{"id": 7, "name": "cig_butt"}, {"id": 3, "name": "cap"}],
        "annotations": [
            {
                "id": 1,
                "image_id": 1,
                "category_id": 7,
                "segmentation": [[10, 10, 30, 10, 30, 20, 10, 20]],
                "bbox": [10, 10, 20, 10],
                "area": 200,
                "iscrowd": 0,
            },
            {
                "id": 2,
                "image_id": 1,
                "category_id": 3,
                "segmentation": [[40, 5, 55, 5, 47, 30]],
                "bbox": [40, 5, 15, 25],
                "area": 187,
                "iscrowd": 0,
            },
            {
                "id": 3,
                "image_id": 2,
                "category_id": 7,
                "segmentation": _rle(m2),
                "bbox": [5, 10, 20, 10],
                "area": 200,
                "iscrowd": 0,
            },
            {
                "id": 4,
                "image_id": 2,
                "category_id": 3,
                "segmentation": _uncompressed_rle(m3),
                "bbox": [30, 30, 18, 15],
                "area": 270,
                "iscrowd": 0,
            },
            {
                "id": 5,
                "image_id": 2,
                "category_id": 7,
                "segmentation": _uncompressed_rle(crowd),
                "bbox": [0, 0, 50, 8],
                "area": 400,
                "iscrowd": 1,
            },
        ],
    }
    ann, img_dir = write_coco(tmp_path, data, {"a.png": (40, 60), "b.png": (50, 50), "empty.png": (30, 30)})
    return ann, img_dir, data
