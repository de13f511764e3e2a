"""resolve_splits: every layout found by itself, valid = val, explicit keys, and what it says when lost."""

from __future__ import annotations

import json
import re
from itertools import pairwise
from pathlib import Path

import pytest

from losslab.data import build_dataset, resolve_splits
from losslab.data.layout import LAYOUTS, canonical_split
from losslab.data.synth import SynthConfig, generate

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

TINY = SynthConfig(train=2, val=1, size=48, seed=0, objects="1")
EMPTY = {"images": [], "annotations": [], "categories": [{"id": 1, "name": "x"}]}


def _touch(root: Path, json_rel: str, images_rel: str) -> None:
    (root / json_rel).parent.mkdir(parents=True, exist_ok=True)
    (root / json_rel).write_text(json.dumps(EMPTY))
    (root / images_rel).mkdir(parents=True, exist_ok=True)


@pytest.mark.parametrize("layout", ["losslab", "cig_butts", "roboflow"])
def test_synth_layouts_are_found_and_load(tmp_path, layout):
    root = generate(tmp_path / "ds", TINY, workers=1, progress=False, layout=layout)
    splits = resolve_splits(root)
    assert splits.layout == layout and splits.root == root and sorted(splits.splits) == ["train", "val"]
    assert LAYOUTS[layout].title in splits.describe() and str(root) in splits.describe()
    train = build_dataset(splits, "train", size=32)
    assert len(train) == 2 and train.cat_names == ["cig_butt"]
    val = build_dataset(root, "valid", size=32)  # a folder works too; valid is val
    assert len(val) == 1 and val.images[0]["file_name"].endswith(".png" if layout == "losslab" else ".jpg")


def test_synth_layout_files_are_where_real_downloads_keep_them(tmp_path):
    cig = generate(tmp_path / "c", TINY, workers=1, progress=False, layout="cig_butts")
    assert (cig / "train" / "coco_annotations.json").is_file() and (cig / "val" / "images" / "000000.jpg").is_file()
    rf = generate(tmp_path / "r", TINY, workers=1, progress=False, layout="roboflow")
    assert (rf / "valid" / "_annotations.coco.json").is_file() and (rf / "valid" / "000000.jpg").is_file()


def test_coco2017_and_test_splits(tmp_path):
    for s in ("train", "val"):
        _touch(tmp_path, f"annotations/instances_{s}2017.json", f"{s}2017")
    splits = resolve_splits(tmp_path)
    assert splits.layout == "coco2017"
    assert splits.split("val").json == tmp_path / "annotations" / "instances_val2017.json"
    assert splits.split("val").images == tmp_path / "val2017"
    with pytest.raises(
        ValueError, match=r"no 'test' split: the COCO 2017 layout .* has train, val .*instances_test2017"
    ):
        splits.split("test")


def test_roboflow_with_a_test_split_and_an_unpacked_archive_folder(tmp_path):
    for s in ("train", "valid", "test"):
        _touch(tmp_path / "export", f"{s}/_annotations.coco.json", s)
    splits = resolve_splits(tmp_path)  # the one folder inside is looked into
    assert splits.layout == "roboflow" and splits.root == tmp_path / "export"
    assert sorted(splits.splits) == ["test", "train", "val"]


def test_nothing_found_lists_every_path_tried(tmp_path):
    (tmp_path / "train").mkdir()
    with pytest.raises(ValueError) as err:
        resolve_splits(tmp_path)
    msg = str(err.value)
    for rel in (
        "annotations/instances_train.json",
        "train/coco_annotations.json",
        "valid/_annotations.coco.json",
        "annotations/instances_val2017.json",
        "train/_annotations.coco.json",  # the one sub-folder is looked into too
    ):
        assert str(tmp_path / rel) in msg
    assert "train_json" in msg


def test_json_without_its_image_folder_says_so(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "coco_annotations.json").write_text(json.dumps(EMPTY))
    with pytest.raises(ValueError, match=r"coco_annotations\.json is there .* image folder .*train/images is not"):
        resolve_splits(tmp_path)


def test_bad_data_values(tmp_path):
    with pytest.raises(ValueError, match="neither 'synthetic' nor an existing dataset folder"):
        resolve_splits(tmp_path / "nope")
    (tmp_path / "a.json").write_text("{}")
    with pytest.raises(ValueError, match="is a file; data= takes a dataset folder"):
        resolve_splits(tmp_path / "a.json")
    with pytest.raises(ValueError, match="set data=ROOT, or all of train_json"):
        resolve_splits("", train_json=str(tmp_path / "a.json"))


def test_explicit_keys_replace_the_layout_or_stand_alone(tmp_path):
    root = generate(tmp_path / "ds", TINY, workers=1, progress=False, layout="cig_butts")
    other = tmp_path / "other.json"
    other.write_text((root / "val" / "coco_annotations.json").read_text())
    splits = resolve_splits(root, val_json=str(other))  # its images: the layout's val folder
    assert splits.split("val").json == other and splits.split("val").images == root / "val" / "images"
    assert splits.split("train").json == root / "train" / "coco_annotations.json"
    assert "set explicitly: val_json" in splits.describe() and "Cigarette Butts" in splits.describe()
    keys = {
        "train_json": str(root / "train" / "coco_annotations.json"),
        "train_images": str(root / "train" / "images"),
        "val_json": str(other),
        "val_images": str(root / "val" / "images"),
    }
    alone = resolve_splits("", **keys)
    assert alone.layout == "explicit" and alone.root is None and sorted(alone.splits) == ["train", "val"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert resolve_splits(empty, **keys).layout == "explicit"  # no layout needed when all four are set
    assert len(build_dataset(alone, "val", size=32)) == 1


def test_explicit_key_errors(tmp_path):
    empty = tmp_path / "empty"
    (empty / "x").mkdir(parents=True)
    (empty / "y").mkdir()
    root = generate(tmp_path / "ds", TINY, workers=1, progress=False)
    with pytest.raises(ValueError, match=r"train_json=.*no such file"):
        resolve_splits(root, train_json=str(tmp_path / "missing.json"))
    with pytest.raises(ValueError, match=r"val_images=.*no such folder"):
        resolve_splits(root, val_images=str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="no dataset layout found"):
        resolve_splits(empty, train_json=str(root / "annotations" / "instances_train.json"))


def test_explicit_json_alone_needs_its_images_when_no_layout_has_the_split(tmp_path):
    root = tmp_path / "ds"
    _touch(root, "train/coco_annotations.json", "train/images")  # a layout with a train split only
    ann = tmp_path / "v.json"
    ann.write_text(json.dumps(EMPTY))
    with pytest.raises(ValueError, match=r"val_json=.* needs val_images"):
        resolve_splits(root, val_json=str(ann))
    with pytest.raises(ValueError, match=r"val_images=.* needs val_json"):
        resolve_splits(root, val_images=str(tmp_path))
    splits = resolve_splits(root, val_json=str(ann), val_images=str(tmp_path))
    assert splits.split("valid").json == ann
    with pytest.raises(ValueError, match=r"no 'val' split: .* has train .*set val_json and val_images"):
        resolve_splits(root).split("val")


def test_canonical_split_names():
    assert [canonical_split(s) for s in ("valid", "validation", "val", "train", "test")] == [
        "val",
        "val",
        "val",
        "train",
        "test",
    ]


def _documented_order() -> list[str]:
    """The layout names in the order the module docstring's table lists them."""
    import losslab.data.layout as layout_module

    return re.findall(r"^``(\w+)``\s+``ROOT/", layout_module.__doc__ or "", flags=re.MULTILINE)


def test_the_docstring_lists_every_layout_in_the_order_they_are_tried():
    assert _documented_order() == list(LAYOUTS) == ["losslab", "cig_butts", "roboflow", "coco2017"]


@pytest.mark.parametrize(("first", "second"), list(pairwise(LAYOUTS)))
def test_the_earlier_layout_wins_when_a_root_holds_two(tmp_path, first, second):
    """Files of two adjacent layouts in one root: the earlier one is used, even with fewer splits
    (the first layout that has any split wins), and the description and errors name it."""
    for name, splits in ((first, ("train",)), (second, ("train", "val"))):
        for split in splits:
            ann, images = LAYOUTS[name].write_paths(tmp_path, split)
            _touch(tmp_path, str(ann.relative_to(tmp_path)), str(images.relative_to(tmp_path)))
    found = resolve_splits(tmp_path)
    assert found.layout == first and found.root == tmp_path and sorted(found.splits) == ["train"]
    train = found.split("train")
    assert (train.json, train.images) == LAYOUTS[first].write_paths(tmp_path, "train")
    assert found.describe().startswith(f"found {LAYOUTS[first].title} in {tmp_path} (train)")
    # The later layout is not used, but it is named: in the description and in the missing split's error.
    assert found.passed_over == ((second, ("train", "val")),)
    assert found.describe().endswith(f"; not used: {LAYOUTS[second].title} beside it (train, val)")
    val_json, val_images = LAYOUTS[second].write_paths(tmp_path, "val")
    with pytest.raises(ValueError, match=rf"no 'val' split: {LAYOUTS[first].title} in .* has train \(no ") as info:
        found.split("val")
    assert f"{LAYOUTS[second].title} beside it has one" in str(info.value)
    assert f"set val_json={val_json} val_images={val_images} to use it" in str(info.value)
    # Those keys do use it.
    chosen = resolve_splits(tmp_path, val_json=str(val_json), val_images=str(val_images))
    val = chosen.split("val")
    assert (val.json, val.images) == (val_json, val_images) and chosen.layout == first


def test_a_later_layout_with_no_split_the_first_lacks_is_not_named(tmp_path):
    for name in ("losslab", "roboflow"):
        for split in ("train", "val"):
            ann, images = LAYOUTS[name].write_paths(tmp_path, split)
            _touch(tmp_path, str(ann.relative_to(tmp_path)), str(images.relative_to(tmp_path)))
    found = resolve_splits(tmp_path)
    assert found.layout == "losslab" and found.passed_over == () and "not used" not in found.describe()
