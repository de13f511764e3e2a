"""Every kind of bad input gets a ValueError naming the file and the entry, or a counted skip."""

from __future__ import annotations

import copy
import json

import pytest

from losslab.data import CocoInstances
from losslab.data.check import check_dataset


def _break(data: dict, how: str) -> dict:
    d = copy.deepcopy(data)
    a = d["annotations"][0]
    if how == "missing_key":
        del a["category_id"]
    elif how == "unknown_image":
        a["image_id"] = 99
    elif how == "unknown_category":
        a["category_id"] = 42
    elif how == "short_polygon":
        a["segmentation"] = [[1, 1, 5, 5]]
    elif how == "bbox_outside":
        a["bbox"] = [50, 30, 40, 40]
    elif how == "escaping_name":
        d["images"][0]["file_name"] = "../../etc/passwd"
    elif how == "absolute_name":
        d["images"][0]["file_name"] = "/etc/passwd"
    elif how == "missing_file":
        d["images"][0]["file_name"] = "nope.png"
    elif how == "rle_size":
        d["annotations"][2]["segmentation"]["size"] = [10, 10]
    return d


# how -> (text the message must contain, the entry it must name)
CASES = {
    "missing_key": ("missing key", "annotation id 1"),
    "unknown_image": ("unknown image id 99", "annotation id 1"),
    "unknown_category": ("unknown category id 42", "annotation id 1"),
    "short_polygon": ("at least 3", "annotation id 1"),
    "bbox_outside": ("outside", "annotation id 1"),
    "escaping_name": ("outside the image folder", "image id 1"),
    "absolute_name": ("absolute path", "image id 1"),
    "missing_file": ("does not exist", "image id 1"),
    "rle_size": ("differs from the image size", "annotation id 3"),
}


@pytest.mark.parametrize("how", sorted(CASES))
def test_bad_entry_raises_naming_file_and_id(tiny_coco, how):
    ann, img_dir, data = tiny_coco
    ann.write_text(json.dumps(_break(data, how)))
    text, where = CASES[how]
    with pytest.raises(ValueError) as err:
        CocoInstances(ann, img_dir)
    msg = str(err.value)
    assert str(ann) in msg and text in msg and where in msg and "skip_bad" in msg


@pytest.mark.parametrize("how", sorted(CASES))
def test_skip_bad_counts_and_keeps_the_rest(tiny_coco, how):
    ann, img_dir, data = tiny_coco
    ann.write_text(json.dumps(_break(data, how)))
    ds = CocoInstances(ann, img_dir, skip_bad=True)
    assert len(ds.skipped) >= 1
    assert any(CASES[how][0] in str(p) for p in ds.skipped)
    image_refused = how in ("escaping_name", "absolute_name", "missing_file")
    assert len(ds) == (2 if image_refused else 3)
    n_anns = sum(len(v) for v in ds.anns_by_image.values())
    assert n_anns == (3 if image_refused else 4)
    ds[0]  # the rest still loads


def test_refused_image_also_refuses_its_annotations(tiny_coco):
    ann, img_dir, data = tiny_coco
    ann.write_text(json.dumps(_break(data, "escaping_name")))
    ds = CocoInstances(ann, img_dir, skip_bad=True)
    msgs = [str(p) for p in ds.skipped]
    assert sum("its image was refused" in m for m in msgs) == 2  # annotations 1 and 2


@pytest.mark.parametrize(
    ("content", "text"),
    [
        ('{"images": [], "annotations": [', "truncated"),
        ("{images: []}", "malformed json at line 1"),
        ('{"images": [], "annotations": []}', "missing top-level key 'categories'"),
        ("[1, 2]", "top level must be a json object"),
        ('{"images": {}, "annotations": [], "categories": []}', "'images' must be a list"),
    ],
)
def test_malformed_files(tmp_path, content, text):
    ann = tmp_path / "bad.json"
    ann.write_text(content)
    with pytest.raises(ValueError, match=text) as err:
        CocoInstances(ann, tmp_path, skip_bad=True)  # file-level problems are never skipped
    assert str(ann) in str(err.value)


def test_missing_annotation_file(tmp_path):
    with pytest.raises(ValueError, match="cannot read annotation file"):
        CocoInstances(tmp_path / "none.json", tmp_path)


def test_unreadable_image_raises_or_skips(tiny_coco):
    ann, img_dir, _ = tiny_coco
    (img_dir / "a.png").write_bytes(b"not a png at all")
    ds = CocoInstances(ann, img_dir)
    with pytest.raises(ValueError, match=r"image id 1: image file .*a\.png is not a readable image"):
        ds[0]
    ds = CocoInstances(ann, img_dir, skip_bad=True)
    _, t = ds[0]
    assert t["image_id"] == 2 and len(ds.skipped) == 1


def test_image_size_mismatch(tiny_coco):
    ann, img_dir, data = tiny_coco
    data["images"][0]["width"] = 61
    data["annotations"][0]["bbox"] = [10, 10, 20, 10]
    ann.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="json says 61x40"):
        CocoInstances(ann, img_dir)[0]


def test_check_lists_every_problem(tiny_coco):
    ann, img_dir, data = tiny_coco
    bad = _break(_break(data, "unknown_category"), "escaping_name")
    bad["annotations"][3]["segmentation"] = [[1, 1, 2, 2]]
    ann.write_text(json.dumps(bad))
    (img_dir / "b.png").write_bytes(b"garbage")
    report = check_dataset(ann, img_dir)
    text = "\n".join(str(p) for p in report.problems)
    assert "outside the image folder" in text
    assert "annotation id 1" in text and "annotation id 4" in text
    assert "not a readable image" in text
    assert not report.ok


def test_check_summary_counts(tiny_coco):
    ann, img_dir, _ = tiny_coco
    report = check_dataset(ann, img_dir)
    assert report.ok
    assert (report.images, report.annotations, report.crowd, report.empty_images) == (3, 5, 1, 1)
    assert report.per_category == {"cap": 2, "cig_butt": 3}
    assert sum(report.sizes.values()) == 5 and report.sizes["small"] == 5
    assert report.image_sizes == {"60x40": 1, "50x50": 1, "30x30": 1}
