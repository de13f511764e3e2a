"""``check_dataset``: validate a COCO dataset fully (json, every image file, every mask) and
summarise it; ``losslab data check`` prints the result."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import cv2

from losslab.data.cocofile import Problem, decode_segmentation, load_coco, safe_image_path

__all__ = ["CheckReport", "check_dataset"]

# COCO's object size buckets (area in pixels).
SIZE_BUCKETS = (("small", 32**2), ("medium", 96**2), ("large", float("inf")))


@dataclass
class CheckReport:
    """What ``check_dataset`` found."""

    ann_file: str
    images: int = 0
    annotations: int = 0
    per_category: dict[str, int] = field(default_factory=dict)
    crowd: int = 0
    empty_images: int = 0
    sizes: dict[str, int] = field(default_factory=dict)  # instance area buckets
    image_sizes: dict[str, int] = field(default_factory=dict)  # "WxH" -> count
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def check_dataset(ann_file: str | Path, image_dir: str | Path, read_images: bool = True) -> CheckReport:
    """Validate a dataset and count what is in it. Never raises for entry-level problems: they
    are all listed in ``problems``; file-level problems (malformed json) raise ``ValueError``.

    Args:
        ann_file: COCO instances json.
        image_dir: image folder.
        read_images: decode every image to find unreadable files and size mismatches.
    """
    index = load_coco(ann_file, image_dir)
    f = str(ann_file)
    report = CheckReport(ann_file=f, problems=list(index.problems))
    names = {c["id"]: c["name"] for c in index.categories}
    report.per_category = {n: 0 for n in names.values()}
    sizes: Counter = Counter()
    image_sizes: Counter = Counter()
    for im in index.images:
        h, w = im["height"], im["width"]
        where = f"image id {im['id']} ({im['file_name']!r})"
        image_sizes[f"{w}x{h}"] += 1
        if read_images:
            path = safe_image_path(Path(image_dir), im["file_name"])
            shape = _image_shape(path)
            if shape is None:
                report.problems.append(Problem(f, where, f"image file {path} is not a readable image"))
            elif shape != (h, w):
                report.problems.append(Problem(f, where, f"file is {shape[1]}x{shape[0]}, json says {w}x{h}"))
        anns = index.anns_by_image.get(im["id"], [])
        report.empty_images += not anns
        for a in anns:
            if not decode_segmentation(a["segmentation"], h, w).any():
                report.problems.append(
                    Problem(f, f"annotation id {a['id']} (image id {im['id']})", "segmentation covers no pixel")
                )
                continue
            report.annotations += 1
            report.per_category[names[a["category_id"]]] += 1
            report.crowd += bool(a.get("iscrowd", 0))
            area = float(a.get("area", 0.0))
            sizes[next(name for name, top in SIZE_BUCKETS if area < top)] += 1
    report.images = len(index.images)
    report.sizes = {name: sizes[name] for name, _ in SIZE_BUCKETS}
    report.image_sizes = dict(image_sizes.most_common())
    return report


def _image_shape(path: Path) -> tuple[int, int] | None:
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    return None if img is None else img.shape[:2]
