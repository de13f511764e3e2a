"""Reading and validating a COCO instances json: every problem is found, named and kept.

``load_coco`` raises ``ValueError`` only for problems with the file as a whole (unreadable,
malformed or truncated json, a missing top-level key). Problems with single entries (an
annotation for an unknown image, a polygon with two points, a file name outside the image
folder, a missing image file, ...) are collected as :class:`Problem` records and the bad entry is
left out of the index; the caller decides whether they are fatal (``CocoInstances`` raises
unless ``skip_bad``; ``losslab data check`` prints them all).
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils

__all__ = ["CocoIndex", "Problem", "decode_rle", "decode_segmentation", "load_coco", "safe_image_path"]

BBOX_TOLERANCE = 1.0  # pixels a bbox may stick out of its image (rounding in exporters)


@dataclass(frozen=True)
class Problem:
    """One bad entry of a COCO file."""

    file: str
    where: str  # "annotation id 7 (image id 3)", "image id 3 (a.png)", "category id 2"
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.where}: {self.message}"


@dataclass
class CocoIndex:
    """The valid part of a COCO file, and what was wrong with the rest."""

    ann_file: Path
    image_dir: Path
    images: list[dict]
    anns_by_image: dict[int, list[dict]]
    categories: list[dict]
    problems: list[Problem] = field(default_factory=list)


def safe_image_path(image_dir: Path, file_name: object) -> Path:
    """``image_dir / file_name``, refusing names that are absolute or climb out of the folder.

    Raises:
        ValueError: for a non-string, absolute or escaping ``file_name``.
    """
    if not isinstance(file_name, str) or not file_name:
        raise ValueError(f"file_name must be a non-empty string, got {file_name!r}")
    if Path(file_name).is_absolute() or file_name.startswith(("/", "\\")) or ":" in file_name[:3]:
        raise ValueError(f"file_name {file_name!r} is an absolute path; it must be relative to the image folder")
    root = image_dir.resolve()
    path = (root / file_name).resolve()
    if not path.is_relative_to(root):
        raise ValueError(f"file_name {file_name!r} points outside the image folder {image_dir}; refused")
    return path


def _read_json(ann_file: Path) -> dict:
    try:
        text = ann_file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"cannot read annotation file {ann_file}: {exc.strerror or exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        hint = " (the file looks truncated)" if exc.pos >= len(text.rstrip()) - 1 else ""
        raise ValueError(
            f"{ann_file}: malformed json at line {exc.lineno} column {exc.colno}: {exc.msg}{hint}"
        ) from None
    if not isinstance(data, dict):
        raise ValueError(f"{ann_file}: top level must be a json object with images, annotations, categories")
    for key in ("images", "annotations", "categories"):
        if key not in data:
            raise ValueError(
                f"{ann_file}: missing top-level key {key!r}; "
                "a COCO instances file needs images, annotations and categories"
            )
        if not isinstance(data[key], list):
            raise ValueError(f"{ann_file}: {key!r} must be a list, got {type(data[key]).__name__}")
    return data


def _missing(entry: object, keys: tuple[str, ...]) -> str | None:
    if not isinstance(entry, dict):
        return f"entry must be a json object, got {type(entry).__name__}"
    absent = [k for k in keys if k not in entry]
    return f"missing key(s) {absent}" if absent else None


def _check_segmentation(segm: object, h: int, w: int) -> str | None:
    """Why a ``segmentation`` is unusable, or None."""
    if isinstance(segm, list):
        if not segm:
            return "segmentation is an empty list"
        for poly in segm:
            if not isinstance(poly, list) or not all(isinstance(v, (int, float)) for v in poly):
                return "a polygon must be a flat list of numbers [x1, y1, x2, y2, ...]"
            if len(poly) % 2:
                return f"a polygon has an odd number of coordinates ({len(poly)})"
            if len(poly) < 6:
                return f"a polygon with {len(poly) // 2} point(s); a polygon needs at least 3 (x, y) points"
        return None
    if isinstance(segm, dict):
        if "size" not in segm or "counts" not in segm:
            return "RLE segmentation needs 'size' and 'counts'"
        if list(segm["size"]) != [h, w]:
            return f"RLE size {segm['size']} differs from the image size [{h}, {w}]"
        if not isinstance(segm["counts"], (str, list)):
            return "RLE counts must be a string (compressed) or a list of ints (uncompressed)"
        if isinstance(segm["counts"], list) and sum(segm["counts"]) != h * w:
            return f"uncompressed RLE counts sum to {sum(segm['counts'])}, expected {h * w} (= h x w)"
        return None
    return f"segmentation must be a list of polygons or an RLE dict, got {type(segm).__name__}"


def _check_bbox(bbox: object, h: int, w: int) -> str | None:
    if not isinstance(bbox, list) or len(bbox) != 4 or not all(isinstance(v, (int, float)) for v in bbox):
        return f"bbox must be [x, y, width, height], got {bbox!r}"
    x, y, bw, bh = (float(v) for v in bbox)
    if not all(math.isfinite(v) for v in (x, y, bw, bh)) or bw < 0 or bh < 0:
        return f"bbox {bbox} has a negative or non-finite value"
    t = BBOX_TOLERANCE
    if x < -t or y < -t or x + bw > w + t or y + bh > h + t:
        return f"bbox {bbox} (xywh) lies outside the {w}x{h} image"
    return None


def load_coco(ann_file: str | Path, image_dir: str | Path, check_files: bool = True) -> CocoIndex:
    """Parse and validate a COCO instances file; see the module docstring for what is checked.

    Args:
        ann_file: the json file.
        image_dir: folder the images' ``file_name`` are relative to.
        check_files: also report image files that do not exist.
    """
    ann_file, image_dir = Path(ann_file), Path(image_dir)
    data = _read_json(ann_file)
    f = str(ann_file)
    problems: list[Problem] = []
    cats: dict[int, dict] = {}
    for c in data["categories"]:
        why = _missing(c, ("id", "name"))
        if why is None and c["id"] in cats:
            why = "duplicate category id"
        cid = c.get("id") if isinstance(c, dict) else None
        if why:
            problems.append(Problem(f, f"category id {cid}", why))
        else:
            cats[c["id"]] = c
    images: dict[int, dict] = {}
    refused: set = set()  # ids of images left out, so their annotations say why
    for im in data["images"]:
        iid = im.get("id") if isinstance(im, dict) else None
        where = f"image id {iid} ({im.get('file_name')!r})" if isinstance(im, dict) else "image entry"
        why = _missing(im, ("id", "file_name", "height", "width"))
        if why is None and iid in images:
            why = "duplicate image id"
        if why is None and not (
            isinstance(im["height"], int) and isinstance(im["width"], int) and im["height"] > 0 and im["width"] > 0
        ):
            why = f"height and width must be positive integers, got {im['height']!r} x {im['width']!r}"
        if why is None:
            try:
                path = safe_image_path(image_dir, im["file_name"])
                if check_files and not path.is_file():
                    why = f"image file {path} does not exist"
            except ValueError as exc:
                why = str(exc)
        if why:
            problems.append(Problem(f, where, why))
            if isinstance(iid, (int, str)):
                refused.add(iid)
        else:
            images[iid] = im
    anns_by_image: dict[int, list[dict]] = {i: [] for i in images}
    seen: set = set()
    for a in data["annotations"]:
        aid = a.get("id") if isinstance(a, dict) else None
        where = f"annotation id {aid}" + (f" (image id {a.get('image_id')})" if isinstance(a, dict) else "")
        why = _missing(a, ("id", "image_id", "category_id", "segmentation"))
        if why is None and aid in seen:
            why = "duplicate annotation id"
        if why is None and a["image_id"] not in images:
            iid = a["image_id"]
            refused_image = isinstance(iid, (int, str)) and iid in refused
            why = "its image was refused (see that image's problem)" if refused_image else f"unknown image id {iid}"
        if why is None and a["category_id"] not in cats:
            why = f"unknown category id {a['category_id']}; known: {sorted(cats)}"
        if why is None:
            im = images[a["image_id"]]
            why = _check_segmentation(a["segmentation"], im["height"], im["width"])
            if why is None and "bbox" in a:
                why = _check_bbox(a["bbox"], im["height"], im["width"])
            if why is None and a.get("iscrowd", 0) not in (0, 1, False, True):
                why = f"iscrowd must be 0 or 1, got {a.get('iscrowd')!r}"
        seen.add(aid)
        if why:
            problems.append(Problem(f, where, why))
        else:
            anns_by_image[a["image_id"]].append(a)
    return CocoIndex(
        ann_file=ann_file,
        image_dir=image_dir,
        images=list(images.values()),
        anns_by_image=anns_by_image,
        categories=[cats[k] for k in sorted(cats)],
        problems=problems,
    )


def decode_segmentation(segm: list | dict, h: int, w: int) -> np.ndarray:
    """A polygon list, an uncompressed RLE or a compressed RLE as a uint8 ``(h, w)`` mask."""
    if isinstance(segm, list):
        rle = mask_utils.merge(mask_utils.frPyObjects(segm, h, w))
    elif isinstance(segm["counts"], list):
        rle = mask_utils.frPyObjects(segm, h, w)
    else:
        counts = segm["counts"]
        rle = {"size": list(segm["size"]), "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
    return decode_rle(rle)


def decode_rle(rle: dict) -> np.ndarray:
    """``pycocotools.mask.decode`` of one RLE as uint8, without its numpy-2 deprecation noise."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return np.ascontiguousarray(mask_utils.decode(rle), dtype=np.uint8)
