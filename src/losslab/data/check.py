"""``check_dataset``: validate a COCO dataset fully (json, every image file, every mask) and
summarise it; ``check_root`` does it for every split of a dataset root; ``losslab data check``
prints the result.

Findings come in two kinds. **Problems** are entries that cannot be used (training refuses them
unless ``skip_bad``) and a split without a single non-crowd annotation (training refuses it).
**Notes** are things read in a way the file did not spell out, counted by kind: flat-list
polygons, renumbered ids, grouping categories, library warnings, EXIF orientations, images scaled
to 8 bit, size mismatches resized to the json's size.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from losslab.data.cocofile import Note, Problem, decode_segmentation, load_coco, safe_image_path
from losslab.data.images import fit_to_annotation, load_image
from losslab.data.layout import DatasetSplits, resolve_splits

__all__ = ["CheckReport", "check_dataset", "check_root"]

# COCO's object size buckets (area in pixels).
SIZE_BUCKETS = (("small", 32**2), ("medium", 96**2), ("large", float("inf")))


@dataclass
class CheckReport:
    """What ``check_dataset`` found."""

    ann_file: str
    image_dir: str = ""
    images: int = 0
    annotations: int = 0
    per_category: dict[str, int] = field(default_factory=dict)
    crowd: int = 0
    empty_images: int = 0
    sizes: dict[str, int] = field(default_factory=dict)  # instance area buckets
    image_sizes: dict[str, int] = field(default_factory=dict)  # "WxH" -> count
    problems: list[Problem] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No problem (notes do not count)."""
        return not self.problems

    @property
    def note_counts(self) -> dict[str, int]:
        """How many notes of each kind, most frequent first."""
        return dict(Counter(n.kind for n in self.notes).most_common())


def _check_image_file(report: CheckReport, image_dir: Path, im: dict) -> None:
    """Decode one image as training will, filing its notes and problems."""
    where = f"image id {im['id']} ({im['file_name']!r})"
    try:
        _, notes = fit_to_annotation(load_image(safe_image_path(image_dir, im["file_name"])), im["height"], im["width"])
    except ValueError as exc:
        report.problems.append(Problem(report.ann_file, where, str(exc)))
        return
    report.notes += [Note(report.ann_file, where, kind, message) for kind, message in notes]


def check_dataset(ann_file: str | Path, image_dir: str | Path, read_images: bool = True) -> CheckReport:
    """Validate a dataset and count what is in it. Never raises for entry-level problems: they
    are all listed in ``problems``; file-level problems (malformed json) raise ``ValueError``.

    Args:
        ann_file: COCO instances json.
        image_dir: image folder.
        read_images: decode every image to find unreadable files, size mismatches and notes.
    """
    index = load_coco(ann_file, image_dir)
    f = str(ann_file)
    report = CheckReport(ann_file=f, image_dir=str(image_dir), problems=list(index.problems), notes=list(index.notes))
    names = {c["id"]: c["name"] for c in index.categories}
    report.per_category = {n: 0 for n in names.values()}
    sizes: Counter = Counter()
    image_sizes: Counter = Counter()
    for im in index.images:
        h, w = im["height"], im["width"]
        image_sizes[f"{w}x{h}"] += 1
        if read_images:
            _check_image_file(report, Path(image_dir), im)
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
    if report.annotations == report.crowd:  # a split without a single object to learn or score
        report.problems.append(
            Problem(
                f,
                "the split",
                f"no annotations in its {report.images} image(s)"
                + (f" (only {report.crowd} crowd region(s))" if report.crowd else "")
                + ": training has nothing to learn from it and COCO AP on it is undefined",
            )
        )
    report.sizes = {name: sizes[name] for name, _ in SIZE_BUCKETS}
    report.image_sizes = dict(image_sizes.most_common())
    return report


def check_root(
    data: str | Path | DatasetSplits, read_images: bool = True
) -> tuple[DatasetSplits, dict[str, CheckReport]]:
    """``check_dataset`` on every split of a dataset root, in any layout ``resolve_splits`` knows.

    Returns:
        The splits found and ``{split: report}``.

    Raises:
        ValueError: no layout fits (listing every path looked at), or a json is malformed.
    """
    splits = data if isinstance(data, DatasetSplits) else resolve_splits(data)
    reports = {
        name: check_dataset(files.json, files.images, read_images) for name, files in sorted(splits.splits.items())
    }
    return splits, reports
