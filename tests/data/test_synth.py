"""The synthetic dataset: determinism, annotations that match their masks, layout, caching."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools.coco import COCO

from losslab.data.scene import SceneOptions, parse_objects, render_scene
from losslab.data.synth import SynthConfig, encode_mask, ensure_synthetic, generate

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

TINY = SynthConfig(train=3, val=2, size=64, seed=1)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_layout_and_same_bytes_twice(tmp_path):
    a = generate(tmp_path / "a", TINY, workers=1, progress=False)
    b = generate(tmp_path / "b", TINY, workers=1, progress=False)
    fa = _files(a)
    assert {
        "train/000000.png",
        "train/000002.png",
        "val/000001.png",
        "annotations/instances_train.json",
        "annotations/instances_val.json",
        "synth.json",
    } <= set(fa)
    assert fa == _files(b)


def test_other_seed_other_dataset(tmp_path):
    a = _files(generate(tmp_path / "a", TINY, workers=1, progress=False))
    b = _files(generate(tmp_path / "b", SynthConfig(train=3, val=2, size=64, seed=2), workers=1, progress=False))
    assert a["train/000000.png"] != b["train/000000.png"]


def test_an_image_does_not_depend_on_the_dataset_size(tmp_path):
    small = _files(generate(tmp_path / "a", SynthConfig(train=2, val=1, size=64, seed=1), workers=1, progress=False))
    big = _files(generate(tmp_path / "b", TINY, workers=1, progress=False))
    assert small["train/000001.png"] == big["train/000001.png"] and small["val/000000.png"] == big["val/000000.png"]


@pytest.mark.slow
def test_worker_count_does_not_change_bytes(tmp_path):
    cfg = SynthConfig(train=5, val=1, size=64, seed=4, task="dense")
    assert _files(generate(tmp_path / "a", cfg, workers=1, progress=False)) == _files(
        generate(tmp_path / "b", cfg, workers=2, progress=False)
    )


@pytest.mark.parametrize("fmt", ["polygon", "rle"])
def test_annotations_agree_with_their_masks(tmp_path, fmt):
    cfg = SynthConfig(train=6, val=0, size=96, seed=3, objects="1-3", segmentation=fmt, difficulty="hard")
    root = generate(tmp_path / "ds", cfg, workers=1, progress=False)
    coco = COCO(str(root / "annotations" / "instances_train.json"))
    assert coco.loadCats(coco.getCatIds())[0]["name"] == "cig_butt"
    assert len(coco.getAnnIds()) >= 6
    for ann in coco.loadAnns(coco.getAnnIds()):
        m = coco.annToMask(ann)
        assert ann["area"] == int(m.sum()) > 0
        ys, xs = np.nonzero(m)
        assert ann["bbox"] == [
            float(xs.min()),
            float(ys.min()),
            float(xs.max() - xs.min() + 1),
            float(ys.max() - ys.min() + 1),
        ]
        assert ann["iscrowd"] == 0
        assert isinstance(ann["segmentation"], list if fmt == "polygon" else dict)


def test_visible_masks_are_disjoint_and_not_tiny():
    for seed in range(6):
        scene = render_scene(np.random.default_rng(seed), SceneOptions(size=96, objects="3-5", difficulty="hard"))
        if len(scene.masks):
            assert scene.masks.sum(axis=0).max() <= 1  # occluded parts belong to the occluder only
            assert scene.masks.reshape(len(scene.masks), -1).sum(axis=1).min() >= 4
        assert scene.image.shape == (96, 96, 3) and scene.image.dtype == np.uint8
        assert len(scene.labels) == len(scene.masks) <= scene.meta["butts_drawn"]


def test_polygons_decode_to_the_rendered_mask():
    scene = render_scene(np.random.default_rng(0), SceneOptions(size=128, objects="2"))
    from pycocotools import mask as mu

    for m in scene.masks:
        polys = encode_mask(m, "polygon")
        back = mu.decode(mu.merge(mu.frPyObjects(polys, 128, 128)))
        assert (back & m).sum() / (back | m).sum() > 0.98


def test_objects_option_and_categories(tmp_path):
    assert parse_objects("auto") is None and parse_objects("2-4") == (2, 4) and parse_objects("3") == (3, 3)
    for bad in ("x", "3-1", "-1"):
        with pytest.raises(ValueError, match="objects"):
            parse_objects(bad)
    cfg = SynthConfig(train=4, val=0, size=64, seed=0, objects="0", categories=3)
    root = generate(tmp_path / "ds", cfg, workers=1, progress=False)
    data = json.loads((root / "annotations" / "instances_train.json").read_text())
    assert data["annotations"] == [] and len(data["images"]) == 4
    assert [c["name"] for c in data["categories"]] == ["cig_butt", "white_butt", "slim_butt"]


@pytest.mark.parametrize(
    ("field", "value", "text"),
    [
        ("size", 8, "size"),
        ("task", "depth", "task"),
        ("difficulty", "insane", "difficulty"),
        ("categories", 9, "categories"),
        ("segmentation", "mesh", "segmentation"),
        ("seed", -1, "seed"),
    ],
)
def test_bad_config_is_refused(tmp_path, field, value, text):
    with pytest.raises(ValueError, match=text):
        generate(tmp_path / "x", SynthConfig(**{field: value}), progress=False)


def test_refuses_a_non_empty_output(tmp_path):
    (tmp_path / "keep.txt").write_text("x")
    with pytest.raises(ValueError, match="not empty"):
        generate(tmp_path, TINY, progress=False)


def test_dense_task_writes_masks_and_plausible_depth(tmp_path):
    cfg = SynthConfig(train=3, val=1, size=64, seed=5, task="dense", objects="1")
    root = generate(tmp_path / "ds", cfg, workers=1, progress=False)
    for stem in ("000000", "000001", "000002"):
        fg = cv2.imread(str(root / "train_masks" / f"{stem}.png"), cv2.IMREAD_UNCHANGED)
        depth = cv2.imread(str(root / "train_depth" / f"{stem}.png"), cv2.IMREAD_UNCHANGED)
        assert fg.dtype == np.uint8 and set(np.unique(fg)) <= {0, 255}
        assert depth.dtype == np.uint16 and depth.shape == (64, 64) and depth.min() > 0
        if fg.any():
            # Butts lie on the ground: nearer the camera than the ground right around them.
            ring = cv2.dilate(fg, np.ones((7, 7), np.uint8)) & ~fg
            assert np.median(depth[fg > 0]) < np.median(depth[ring > 0])


def test_ensure_synthetic_generates_once_and_reuses(tmp_path):
    a = ensure_synthetic(tmp_path, train=2, val=1, size=64, seed=0, workers=1, progress=False)
    stamp = (a / "synth.json").stat().st_mtime_ns
    b = ensure_synthetic(tmp_path, train=2, val=1, size=64, seed=0, workers=1, progress=False)
    assert a == b and (b / "synth.json").stat().st_mtime_ns == stamp
    c = ensure_synthetic(tmp_path, train=2, val=1, size=64, seed=1, workers=1, progress=False)
    assert c != a and c.is_dir()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp")]  # temp folders cleaned
    with pytest.raises(ValueError, match="unknown synthetic dataset options"):
        ensure_synthetic(tmp_path, train=2, val=1, size=64, colour="red")


def test_ensure_synthetic_uses_losslab_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("LOSSLAB_CACHE", str(tmp_path / "cache"))
    root = ensure_synthetic(None, train=1, val=1, size=48, seed=0, workers=1, progress=False)
    assert root.parent == tmp_path / "cache" / "datasets"


def test_mask_with_a_hole_falls_back_to_rle():
    ring = np.zeros((20, 20), np.uint8)
    ring[2:18, 2:18] = 1
    ring[6:14, 6:14] = 0
    assert isinstance(encode_mask(ring, "polygon"), dict)
    solid = np.zeros((20, 20), np.uint8)
    solid[3:9, 4:15] = 1
    assert isinstance(encode_mask(solid, "polygon"), list)


def _rect_sprites(monkeypatch, rects):
    """Make the scene draw the given rectangles (y0, x0, h, w) as butts, in order."""
    from losslab.data import scene as scene_mod
    from losslab.data.objects import Sprite

    queue = list(rects)

    def fake_butt(rng, canvas, centre, px_per_mm, style, light):
        y0, x0, h, w = queue.pop(0)
        rgb = np.full((h, w, 3), 200, np.float32)
        return Sprite(y0, x0, rgb, np.ones((h, w), np.float32), np.full((h, w), 8, np.float32), float(h * w))

    monkeypatch.setattr(scene_mod, "render_butt", fake_butt)


@pytest.mark.parametrize(("overlap_cols", "kept"), [(0, 2), (10, 2), (18, 1), (20, 1)])
def test_occluded_butts_keep_only_their_visible_part(monkeypatch, overlap_cols, kept):
    # The first butt covers columns 10..29; the second starts so that it hides `overlap_cols` of them.
    _rect_sprites(monkeypatch, [(20, 10, 10, 20), (20, 30 - overlap_cols, 10, 20)])
    sc = render_scene(np.random.default_rng(0), SceneOptions(size=64, objects="2", difficulty="easy"))
    assert len(sc.masks) == kept
    if kept == 2:
        assert sc.masks[0].sum() == 10 * (20 - overlap_cols)  # visible part only
        assert sc.masks[1].sum() == 200
        assert not (sc.masks[0] & sc.masks[1]).any()
    else:
        assert sc.masks[0].sum() == 200  # the occluder; the almost hidden one is dropped


def test_ensure_synthetic_survives_a_concurrent_twin(monkeypatch, tmp_path):
    from losslab.data import synth

    real = synth.generate

    # A twin that finished first: the final folder already holds a complete dataset.
    final = ensure_synthetic(tmp_path, train=1, val=1, size=48, seed=0, workers=1, progress=False)
    (final / "synth.json").unlink()  # make ensure_synthetic generate again ...
    done = {}

    def twin_finishes_first(out, cfg, workers=None, progress=True):
        root = real(out, cfg, workers=workers, progress=progress)
        (final / "synth.json").write_text("{}")  # ... while the twin completes the final folder
        done["tmp"] = root
        return root

    monkeypatch.setattr(synth, "generate", twin_finishes_first)
    again = ensure_synthetic(tmp_path, train=1, val=1, size=48, seed=0, workers=1, progress=False)
    assert again == final and not done["tmp"].exists()


def test_ensure_synthetic_leaves_nothing_after_a_crash(monkeypatch, tmp_path):
    from losslab.data import synth

    def boom(out, cfg, workers=None, progress=True):
        (Path(out) / "train").mkdir()
        raise RuntimeError("disk full")

    monkeypatch.setattr(synth, "generate", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        ensure_synthetic(tmp_path, train=1, val=1, size=48, seed=0, workers=1, progress=False)
    assert [p.name for p in tmp_path.iterdir()] == [".generating.lock"]  # the lock stays, empty


def test_dense_foreground_is_the_union_of_the_instances(tmp_path):
    cfg = SynthConfig(train=3, val=0, size=64, seed=8, task="dense", objects="1-3")
    root = generate(tmp_path / "ds", cfg, workers=1, progress=False)
    coco = COCO(str(root / "annotations" / "instances_train.json"))
    for info in coco.loadImgs(coco.getImgIds()):
        union = np.zeros((64, 64), np.uint8)
        for ann in coco.loadAnns(coco.getAnnIds(imgIds=info["id"])):
            union |= coco.annToMask(ann)
        fg = cv2.imread(str(root / "train_masks" / info["file_name"]), cv2.IMREAD_GRAYSCALE) > 0
        # Equal up to the polygon tracing (a few boundary pixels).
        assert (fg ^ (union > 0)).sum() <= max(3, 0.05 * fg.sum())
