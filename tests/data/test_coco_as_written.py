"""COCO files as other tools write them: flat-list polygons, string ids, sub-folders, Roboflow's
grouping category, images whose size or orientation differs from the json."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from PIL import Image

from losslab.data import CocoInstances
from losslab.data.check import check_dataset
from losslab.data.cocofile import FLAT_POLYGON, GROUPING_CATEGORY, RENUMBERED_IDS
from losslab.data.images import EXIF_ORIENTATION, SIZE_MISMATCH
from losslab.engine.evaluate import InstanceEvaluator

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def _kinds(notes) -> list[str]:
    return sorted(n.kind for n in notes)


def test_flat_list_polygon_is_one_polygon(tiny_coco):
    ann, img_dir, data = tiny_coco
    reference = CocoInstances(ann, img_dir).load_sample(0)["masks"]
    flat = copy.deepcopy(data)
    flat["annotations"][0]["segmentation"] = flat["annotations"][0]["segmentation"][0]
    ann.write_text(json.dumps(flat))
    ds = CocoInstances(ann, img_dir)
    np.testing.assert_array_equal(ds.load_sample(0)["masks"], reference)
    assert _kinds(ds.notes) == [FLAT_POLYGON] and "annotation id 1" in str(ds.notes[0])
    assert ds.gt["annotations"][0]["segmentation"] == [data["annotations"][0]["segmentation"][0]]
    report = check_dataset(ann, img_dir)
    assert report.ok and report.note_counts == {FLAT_POLYGON: 1}


def test_rle_counts_as_string_and_as_list(tiny_coco):
    ann, img_dir, data = tiny_coco
    kinds = [type(a["segmentation"]["counts"]) for a in data["annotations"][2:]]
    assert kinds == [str, list, list]
    _, t = CocoInstances(ann, img_dir)[1]
    assert [int(m.sum()) for m in t["masks"]] == [200, 270, 400]


def _string_ids(data: dict) -> dict:
    d = copy.deepcopy(data)
    for im in d["images"]:
        im["id"] = f"img-{im['id']}"
    for c in d["categories"]:
        c["id"] = f"cat-{c['id']}"
    for a in d["annotations"]:
        a["id"], a["image_id"], a["category_id"] = f"a{a['id']}", f"img-{a['image_id']}", f"cat-{a['category_id']}"
    return d


def test_string_ids_are_numbered_and_evaluate(tiny_coco):
    ann, img_dir, data = tiny_coco
    ann.write_text(json.dumps(_string_ids(data)))
    ds = CocoInstances(ann, img_dir)
    assert _kinds(ds.notes) == [RENUMBERED_IDS] * 3
    assert [im["id"] for im in ds.images] == [1, 2, 3] and ds.cat_names == ["cig_butt", "cap"]
    assert {a["image_id"] for a in ds.gt["annotations"]} == {1, 2}
    # the ground truth the evaluator gets has the same integer ids the targets carry: a perfect
    # prediction scores 100
    evaluator = InstanceEvaluator(ds.gt, ds.label_to_cat, iou_types=("segm",))
    targets = [ds[i][1] for i in range(len(ds))]
    preds = [
        {
            "masks": t["masks"][~t["iscrowd"]].float(),
            "labels": t["labels"][~t["iscrowd"]],
            "scores": torch.ones(int((~t["iscrowd"]).sum())),
            "boxes": t["boxes"][~t["iscrowd"]],
        }
        for t in targets
    ]
    evaluator.process(targets, preds)
    assert evaluator.evaluate()["segm"]["AP"] == pytest.approx(100.0)


def test_unhashable_ids_are_problems_not_crashes(tiny_coco):
    ann, img_dir, data = tiny_coco
    bad = copy.deepcopy(data)
    bad["images"][0]["id"] = [1]
    bad["annotations"][2]["image_id"] = {"id": 2}
    ann.write_text(json.dumps(bad))
    report = check_dataset(ann, img_dir)
    text = "\n".join(str(p) for p in report.problems)
    assert "image id must be an integer or a string" in text and "unknown image id {'id': 2}" in text


def test_file_names_with_sub_folders_and_backslashes(tiny_coco):
    ann, img_dir, data = tiny_coco
    (img_dir / "sub" / "deeper").mkdir(parents=True)
    (img_dir / "a.png").rename(img_dir / "sub" / "deeper" / "a.png")
    (img_dir / "b.png").rename(img_dir / "sub" / "b.png")
    d = copy.deepcopy(data)
    d["images"][0]["file_name"] = "sub/deeper/a.png"
    d["images"][1]["file_name"] = "sub\\b.png"  # as a Windows tool writes it
    ann.write_text(json.dumps(d))
    ds = CocoInstances(ann, img_dir)
    assert ds[0][0].shape[0] == 3 and ds[1][0].shape[0] == 3
    d["images"][1]["file_name"] = "sub\\..\\..\\..\\etc\\passwd"
    ann.write_text(json.dumps(d))
    with pytest.raises(ValueError, match="outside the image folder"):
        CocoInstances(ann, img_dir)


def test_roboflow_grouping_category_gets_no_class(tiny_coco):
    ann, img_dir, data = tiny_coco
    d = copy.deepcopy(data)
    d["categories"] = [
        {"id": 0, "name": "things", "supercategory": "none"},
        {"id": 7, "name": "cig_butt", "supercategory": "things"},
        {"id": 3, "name": "cap", "supercategory": "things"},
    ]
    ann.write_text(json.dumps(d))
    ds = CocoInstances(ann, img_dir)
    assert ds.num_classes == 2 and ds.cat_names == ["cap", "cig_butt"]
    assert _kinds(ds.notes) == [GROUPING_CATEGORY] and "'things'" in str(ds.notes[0])
    # a category that is its own supercategory (the Cigarette Butts download's) is a class
    d["categories"] = [{"id": 7, "name": "cig_butt", "supercategory": "cig_butt"}, {"id": 3, "name": "cap"}]
    ann.write_text(json.dumps(d))
    assert CocoInstances(ann, img_dir).num_classes == 2


def test_resized_copy_follows_the_json_and_another_aspect_is_refused(tiny_coco):
    ann, img_dir, _ = tiny_coco
    big = Image.open(img_dir / "a.png").resize((120, 80))  # the json says 60x40
    big.save(img_dir / "a.png")
    ds = CocoInstances(ann, img_dir)
    sample = ds.load_sample(0)
    assert sample["image"].shape == (40, 60, 3) and sample["masks"].shape[1:] == (40, 60)
    report = check_dataset(ann, img_dir)
    assert report.ok and report.note_counts == {SIZE_MISMATCH: 1}
    assert "file is 120x80, json says 60x40" in str(report.notes[0])
    Image.open(img_dir / "b.png").resize((50, 70)).save(img_dir / "b.png")
    report = check_dataset(ann, img_dir)
    assert not report.ok and "is 50x70 but the json says 50x50" in str(report.problems[0])
    with pytest.raises(ValueError, match=r"image id 2: image file .* is 50x70 but the json says 50x50"):
        ds.load_sample(1)


def test_exif_rotated_photo_follows_the_json(tiny_coco):
    ann, img_dir, data = tiny_coco
    exif = Image.Exif()
    exif[0x0112] = 8  # shown rotated: the stored 60x40 shows as 40x60
    Image.open(img_dir / "a.png").save(img_dir / "a.jpg", exif=exif, quality=95)
    d = copy.deepcopy(data)
    d["images"][0]["file_name"] = "a.jpg"  # annotated on the stored pixels (json 60x40)
    ann.write_text(json.dumps(d))
    report = check_dataset(ann, img_dir)
    assert report.ok and report.note_counts == {EXIF_ORIENTATION: 1} and "not applied" in str(report.notes[0])
    d["images"][0].update(height=60, width=40)  # annotated as shown (the polygons still fit in 40x60)
    d["annotations"][0]["segmentation"] = [[5, 10, 30, 10, 30, 20, 5, 20]]
    d["annotations"][0]["bbox"] = [5, 10, 25, 10]
    d["annotations"][1]["segmentation"] = [[10, 40, 30, 40, 20, 55]]
    d["annotations"][1]["bbox"] = [10, 40, 20, 15]
    ann.write_text(json.dumps(d))
    report = check_dataset(ann, img_dir)
    assert (
        report.ok
        and report.note_counts == {EXIF_ORIENTATION: 1}
        and "applied (stored as 60x40)" in str(report.notes[0])
    )
    assert CocoInstances(ann, img_dir).load_sample(0)["image"].shape == (60, 40, 3)
