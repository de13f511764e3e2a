"""Reading and validating a COCO instances json: every problem is found, named and kept.

``load_coco`` raises ``ValueError`` only for problems with the file as a whole (unreadable,
malformed or truncated json, a missing top-level key). Problems with single entries (an
annotation for an unknown image, a polygon with two points, a file name outside the image
folder, a missing image file, ...) are collected as :class:`Problem` records and the bad entry is
left out of the index; the caller decides whether they are fatal (``CocoInstances`` raises
unless ``skip_bad``; ``losslab data check`` prints them all).

COCO as tools write it is read as it was meant, each case recorded as a :class:`Note`: a
``segmentation`` that is one flat list of numbers is one polygon; image, annotation and category
ids that are not integers are numbered 1..n in file order; ``file_name`` with backslashes is a
path with sub-folders; a category that is only another category's ``supercategory`` and owns no
annotation (the root class that Roboflow exports put first) is left out. ``CocoIndex.to_coco()``
is the file as it was read: what evaluation compares against.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

__all__ = [
    "FLAT_POLYGON",
    "GROUPING_CATEGORY",
    "RENUMBERED_IDS",
    "CocoIndex",
    "Note",
    "Problem",
    "decode_rle",
    "decode_segmentation",
    "load_coco",
    "safe_image_path",
]

BBOX_TOLERANCE = 1.0  # pixels a bbox may stick out of its image (rounding in exporters)

# Kinds of note (see also losslab.data.images).
FLAT_POLYGON = "flat-list polygon"
RENUMBERED_IDS = "non-integer ids"
GROUPING_CATEGORY = "grouping category"


@dataclass(frozen=True)
class Problem:
    """One bad entry of a COCO file."""

    file: str
    where: str  # "annotation id 7 (image id 3)", "image id 3 (a.png)", "category id 2"
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.where}: {self.message}"


@dataclass(frozen=True)
class Note:
    """Something read in a way the file did not spell out (not a problem: nothing is left out)."""

    file: str
    where: str
    kind: str  # FLAT_POLYGON, "EXIF orientation", ...: what `losslab data check` counts
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.where}: {self.message}"


@dataclass
class CocoIndex:
    """The valid part of a COCO file, and what was wrong with the rest.

    Image, annotation and category ids are integers here (renumbered when the file's were not).
    """

    ann_file: Path
    image_dir: Path
    images: list[dict]
    anns_by_image: dict[int, list[dict]]
    categories: list[dict]
    problems: list[Problem] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)

    def to_coco(self) -> dict:
        """The valid part as a COCO dict (integer ids, every polygon a list of lists)."""
        anns = [a for im in self.images for a in self.anns_by_image.get(im["id"], [])]
        return {"images": list(self.images), "annotations": anns, "categories": list(self.categories)}


def safe_image_path(image_dir: Path, file_name: object) -> Path:
    """``image_dir / file_name``, refusing names that are absolute or climb out of the folder.

    Raises:
        ValueError: for a non-string, absolute or escaping ``file_name``.
    """
    if not isinstance(file_name, str) or not file_name:
        raise ValueError(f"file_name must be a non-empty string, got {file_name!r}")
    file_name = file_name.replace("\\", "/")  # sub-folders as a Windows tool writes them
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


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _id_map(entries: list, what: str, f: str) -> tuple[dict | None, list[Note]]:
    """``{file id: 1..n}`` in file order when any ``what`` id is not an integer (else None)."""
    ids = [e.get("id") for e in entries if isinstance(e, dict) and isinstance(e.get("id"), (int, str))]
    if all(_is_int(i) for i in ids):
        return None, []
    mapping: dict = {}
    for i in ids:
        mapping.setdefault(i, len(mapping) + 1)
    example = next(i for i in ids if not _is_int(i))
    note = Note(
        f,
        f"{what}s",
        RENUMBERED_IDS,
        f"{what} ids are not all integers (e.g. {example!r}): numbered 1..n in file order",
    )
    return mapping, [note]


def _flat_polygon(segm: object) -> bool:
    """A segmentation written as one flat list of numbers: one polygon without its outer list."""
    return isinstance(segm, list) and bool(segm) and all(isinstance(v, (int, float)) for v in segm)


def _load_categories(data: dict, f: str, problems: list[Problem], notes: list[Note]) -> tuple[dict, dict | None]:
    """Valid categories by (integer) id, and the map from the file's ids when they were renumbered."""
    cmap, id_notes = _id_map(data["categories"], "category", f)
    notes += id_notes
    cats: dict[int, dict] = {}
    for c in data["categories"]:
        why = _missing(c, ("id", "name"))
        cid = c.get("id") if isinstance(c, dict) else None
        new = cmap.get(cid) if cmap is not None and isinstance(cid, (int, str)) else cid
        if why is None and not _is_int(new):
            why = f"category id must be an integer or a string, got {cid!r}"
        if why is None and new in cats:
            why = "duplicate category id"
        if why:
            problems.append(Problem(f, f"category id {cid}", why))
        else:
            cats[new] = {**c, "id": new}
    return cats, cmap


def _check_image(im: Any, images: dict, image_dir: Path, check_files: bool) -> str | None:
    why = _missing(im, ("id", "file_name", "height", "width"))
    if why is None and not isinstance(im["id"], (int, str)):
        why = f"image id must be an integer or a string, got {im['id']!r}"
    if why is None and im["id"] in images:
        why = "duplicate image id"
    if why is None and not all(_is_int(im[k]) and im[k] > 0 for k in ("height", "width")):
        why = f"height and width must be positive integers, got {im['height']!r} x {im['width']!r}"
    if why is None:
        try:
            path = safe_image_path(image_dir, im["file_name"])
            if check_files and not path.is_file():
                why = f"image file {path} does not exist"
        except ValueError as exc:
            why = str(exc)
    return why


def _load_images(data: dict, image_dir: Path, check_files: bool, f: str, problems: list, notes: list) -> tuple:
    """Valid images (integer ids) keyed by the file's id, and the file's ids of the refused ones."""
    imap, id_notes = _id_map(data["images"], "image", f)
    notes += id_notes
    images: dict = {}
    refused: set = set()  # ids of images left out, so their annotations say why
    for im in data["images"]:
        iid = im.get("id") if isinstance(im, dict) else None
        where = f"image id {iid} ({im.get('file_name')!r})" if isinstance(im, dict) else "image entry"
        why = _check_image(im, images, image_dir, check_files)
        if why:
            problems.append(Problem(f, where, why))
            if isinstance(iid, (int, str)):
                refused.add(iid)
        else:
            images[iid] = {**im, "id": imap[iid] if imap is not None else iid}
    return images, refused


def _unknown_image(iid: object, images: dict) -> str:
    """Why an annotation's ``image_id`` names no image; says so when only the id's type differs."""
    twin = str(iid) if _is_int(iid) else int(iid) if isinstance(iid, str) and iid.isdigit() else None
    if twin is None or twin not in images:
        return f"unknown image id {iid!r}"
    kinds = ("an integer", "a string") if _is_int(iid) else ("a string", "an integer")
    return f"image_id {iid!r} is {kinds[0]} but the image's id is {twin!r}, {kinds[1]}: write both ids the same way"


def _check_annotation(a: Any, seen: set, images: dict, refused: set, cats: dict, cmap: dict | None) -> str | None:
    why = _missing(a, ("id", "image_id", "category_id", "segmentation"))
    if why is None and not isinstance(a["id"], (int, str)):
        why = f"annotation id must be an integer or a string, got {a['id']!r}"
    if why is None and a["id"] in seen:
        why = "duplicate annotation id"
    if why is None and not (isinstance(a["image_id"], (int, str)) and a["image_id"] in images):
        iid = a["image_id"]
        gone = isinstance(iid, (int, str)) and iid in refused
        why = "its image was refused (see that image's problem)" if gone else _unknown_image(iid, images)
    cid = a["category_id"] if why is None else None
    if why is None and (cmap.get(cid) if cmap is not None and isinstance(cid, (int, str)) else cid) not in cats:
        why = f"unknown category id {cid!r}; known: {sorted(cats) if cmap is None else sorted(cmap, key=str)}"
    if why is None:
        im = images[a["image_id"]]
        segm = a["segmentation"]
        why = _check_segmentation([segm] if _flat_polygon(segm) else segm, im["height"], im["width"])
        if why is None and "bbox" in a:
            why = _check_bbox(a["bbox"], im["height"], im["width"])
        if why is None and a.get("iscrowd", 0) not in (0, 1, False, True):
            why = f"iscrowd must be 0 or 1, got {a.get('iscrowd')!r}"
    return why


def _drop_grouping_categories(cats: dict, anns_by_image: dict, f: str, notes: list[Note]) -> dict:
    """Categories less those that only group others (named as another's supercategory, no annotation)."""
    used = {a["category_id"] for anns in anns_by_image.values() for a in anns}
    parents = {c.get("supercategory") for c in cats.values() if c.get("supercategory") != c["name"]}
    keep = {}
    for cid, c in cats.items():
        if c["name"] in parents and cid not in used:
            notes.append(
                Note(
                    f,
                    f"category id {cid} ({c['name']!r})",
                    GROUPING_CATEGORY,
                    "only groups other categories "
                    "(their supercategory) and has no annotation: left out, so it gets no class",
                )
            )
        else:
            keep[cid] = c
    return keep if keep else cats


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
    notes: list[Note] = []
    cats, cmap = _load_categories(data, f, problems, notes)
    images, refused = _load_images(data, image_dir, check_files, f, problems, notes)
    amap, id_notes = _id_map(data["annotations"], "annotation", f)
    notes += id_notes
    anns_by_image: dict[int, list[dict]] = {im["id"]: [] for im in images.values()}
    seen: set = set()
    for a in data["annotations"]:
        aid = a.get("id") if isinstance(a, dict) else None
        where = f"annotation id {aid}" + (f" (image id {a.get('image_id')})" if isinstance(a, dict) else "")
        why = _check_annotation(a, seen, images, refused, cats, cmap)
        if isinstance(aid, (int, str)):
            seen.add(aid)
        if why:
            problems.append(Problem(f, where, why))
            continue
        a = {**a, "id": amap[aid] if amap is not None else aid, "image_id": images[a["image_id"]]["id"]}
        a["category_id"] = cmap[a["category_id"]] if cmap is not None else a["category_id"]
        if _flat_polygon(a["segmentation"]):
            a["segmentation"] = [a["segmentation"]]
            notes.append(Note(f, where, FLAT_POLYGON, "segmentation is one flat list of numbers: read as one polygon"))
        anns_by_image[a["image_id"]].append(a)
    cats = _drop_grouping_categories(cats, anns_by_image, f, notes)
    return CocoIndex(
        ann_file=ann_file,
        image_dir=image_dir,
        images=list(images.values()),
        anns_by_image=anns_by_image,
        categories=[cats[k] for k in sorted(cats)],
        problems=problems,
        notes=notes,
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
