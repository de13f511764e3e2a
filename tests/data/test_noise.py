"""Label noise: the spec grammar and each corruption, on masks drawn in the test."""

from __future__ import annotations

import itertools

import cv2
import numpy as np
import pytest

from losslab.data.noise import LabelNoise, corrupt_masks, make_label_noise, simplify_polygons
from losslab.data.noise_spec import NoiseOp, format_label_noise, parse_label_noise
from losslab.grammar import SpecError


def _ellipse(size: int = 96, axes: tuple[int, int] = (30, 18), centre: tuple[int, int] | None = None) -> np.ndarray:
    m = np.zeros((size, size), np.uint8)
    cv2.ellipse(m, centre or (size // 2, size // 2), axes, 25, 0, 360, 1, -1)
    return m


def _copies(mask: np.ndarray, n: int) -> np.ndarray:
    return np.repeat(mask[None], n, axis=0)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


# --- the spec ------------------------------------------------------------------------------------


def test_specs_parse_to_canonical_ops():
    ops = parse_label_noise("boundary( px = 2 )+drop(p=0.1)")
    assert ops == (NoiseOp("boundary", {"px": 2}), NoiseOp("drop", {"p": 0.1}))
    assert format_label_noise(ops) == "boundary(px=2) + drop(p=0.1)"
    assert parse_label_noise("none") == () and format_label_noise(()) == "none"
    assert parse_label_noise("dilate(px=2.0)")[0].params["px"] == 2  # a whole number written as a float
    assert parse_label_noise("simplify(tol=1.5)")[0].params == {"tol": 1.5}
    assert make_label_noise("none") is None and make_label_noise(None) is None
    assert make_label_noise("erode(px=1)", seed=3).seed == 3


@pytest.mark.parametrize(
    ("spec", "param", "why"),
    [
        ("dilate(px=oops)", "px", "whole number of pixels"),
        ("erode(px=-1)", "px", "whole number of pixels"),
        ("boundary(px=1.5)", "px", "whole number of pixels"),
        ("shift(px=true)", "px", "whole number of pixels"),
        ("simplify(tol=-0.5)", "tol", ">= 0"),
        ("drop(p=1.5)", "p", "between 0 and 1"),
        ("drop(p=-0.1)", "p", "between 0 and 1"),
    ],
)
def test_bad_parameter_values_name_the_parameter(spec, param, why):
    with pytest.raises(SpecError, match=why) as info:
        parse_label_noise(f"boundary(px=1) + {spec}")
    assert f"{spec.split('(')[0]}: {param} " in str(info.value)
    assert info.value.pos == 17 and "position 17 of the label_noise spec" in str(info.value)


@pytest.mark.parametrize(
    ("spec", "pos", "message"),
    [
        ("boundary(px=2) + dorp(p=0.1)", 17, "unknown label noise 'dorp'. Did you mean 'drop'"),
        ("dilate(pz=2)", 0, "no parameter 'pz'. Did you mean 'px'"),
        ("dilate", 0, "dilate needs px"),
        ("boundary(px=2) +", 16, "expected a noise name"),
        ("0.5*dilate(px=1)", 0, "take no weight"),
        ("dilate(px=1)*2", 12, "take no weight"),
        ("-dilate(px=1)", 0, "take no weight"),
        ("none + drop(p=0.1)", 0, "cannot be combined"),
        ("drop(p=0.1) drop(p=0.2)", 12, "joined with '\\+'"),
        ("", 0, "empty label_noise spec"),
    ],
)
def test_malformed_specs_give_the_position(spec, pos, message):
    with pytest.raises(SpecError, match=message) as info:
        parse_label_noise(spec)
    assert info.value.pos == pos and f"position {pos} of the label_noise spec" in str(info.value)


def test_a_spec_must_be_a_string():
    with pytest.raises(ValueError, match="is a string"):
        parse_label_noise(2)  # type: ignore[arg-type]


# --- each corruption ---------------------------------------------------------------------------------


def test_dilate_grows_each_instance_monotonically_in_px():
    clean = _copies(_ellipse(), 40)
    areas = []
    for px in (0, 1, 2, 4, 8):
        out, keep = corrupt_masks(clean, f"dilate(px={px})", seed=0, image_id=1)
        assert keep.all() and np.all(out >= clean)  # every dilated mask contains its clean mask
        areas.append(out.reshape(40, -1).sum(axis=1))
    assert np.array_equal(areas[0], clean.reshape(40, -1).sum(axis=1))
    for small, large in itertools.pairwise(areas):
        assert np.all(large >= small) and large.mean() > small.mean()  # levels nest, per instance


def test_erode_shrinks_each_instance_monotonically_in_px():
    clean = _copies(_ellipse(), 40)
    areas = []
    for px in (1, 2, 4):
        out, keep = corrupt_masks(clean, f"erode(px={px})", seed=0, image_id=1)
        assert keep.all() and np.all(out <= clean)
        areas.append(out.reshape(40, -1).sum(axis=1))
    for large, small in itertools.pairwise(areas):
        assert np.all(small <= large) and small.mean() < large.mean()


def test_erosion_treats_the_image_edge_as_background():
    clean = np.zeros((1, 32, 32), np.uint8)
    clean[0, :10, :10] = 1  # touches the top and left edges
    out, _ = corrupt_masks(_copies(clean[0], 30), "erode(px=2)", seed=0, image_id=1)
    shrunk = out[out.reshape(30, -1).sum(axis=1) < 100]
    assert len(shrunk) and not shrunk[:, 0, :].any() and not shrunk[:, :, 0].any()


def test_boundary_either_grows_or_shrinks_each_instance():
    clean = _ellipse()
    out, keep = corrupt_masks(_copies(clean, 40), "boundary(px=3)", seed=0, image_id=1)
    grown = [bool(np.all(m >= clean)) and m.sum() > clean.sum() for m in out]
    shrunk = [bool(np.all(m <= clean)) and m.sum() < clean.sum() for m in out]
    same = [np.array_equal(m, clean) for m in out]
    assert keep.all() and all(g or s or e for g, s, e in zip(grown, shrunk, same, strict=True))
    assert sum(grown) >= 5 and sum(shrunk) >= 5  # a coin flip over 40 instances (0..3 px each)


def test_shift_moves_masks_by_at_most_px_and_keeps_their_area():
    clean = _ellipse(centre=(48, 48))
    out, keep = corrupt_masks(_copies(clean, 40), "shift(px=5)", seed=0, image_id=1)
    ys0, xs0 = np.nonzero(clean)
    moved = 0
    for m in out:
        assert m.sum() == clean.sum()  # far from the edges nothing is lost
        ys, xs = np.nonzero(m)
        dy, dx = ys.min() - ys0.min(), xs.min() - xs0.min()
        assert np.array_equal(np.roll(clean, (dy, dx), axis=(0, 1)), m)  # a pure translation
        assert dx * dx + dy * dy <= (5 + 0.71) ** 2  # the rounded components of a move of up to 5 px
        moved += (dx, dy) != (0, 0)
    assert keep.all() and moved >= 20  # 35 of 40 with seed 0


def test_a_mask_shifted_off_the_image_is_dropped_and_counted():
    dot = np.zeros((16, 16), np.uint8)
    dot[0, 0] = 1  # any move up or left takes it off the image
    noise = LabelNoise("shift(px=3)", seed=0)
    out, keep = noise.corrupt(_copies(dot, 40), image_id=1)
    assert (~keep).sum() >= 10 and not out[~keep].any()
    assert noise.counts.emptied == (~keep).sum() and noise.counts.dropped == 0 and noise.counts.instances == 40


def test_simplify_keeps_iou_high_and_cuts_vertices():
    clean = _ellipse()
    raw = sum(len(c) for c in cv2.findContours(clean, cv2.RETR_TREE, cv2.CHAIN_APPROX_NONE)[0])
    for tol, min_iou in ((1, 0.97), (2, 0.90)):  # measured 0.986 and 0.952
        out, keep = corrupt_masks(clean[None], f"simplify(tol={tol})", seed=0, image_id=1)
        vertices = sum(len(p) for p, _ in simplify_polygons(clean, tol))
        assert keep.all() and _iou(out[0], clean) >= min_iou
        assert vertices <= raw / 4  # measured: 139 outline points -> 15 and 9 vertices
    assert sum(len(p) for p, _ in simplify_polygons(clean, 4)) < sum(len(p) for p, _ in simplify_polygons(clean, 1))


def test_simplify_with_zero_tolerance_keeps_masks_with_holes_exactly():
    rng = np.random.default_rng(0)
    ring = np.zeros((64, 64), np.uint8)
    cv2.rectangle(ring, (5, 5), (50, 50), 1, -1)
    cv2.rectangle(ring, (15, 15), (40, 40), 0, -1)
    cv2.rectangle(ring, (25, 25), (30, 30), 1, -1)  # an island inside the hole
    blobs = [(cv2.GaussianBlur(rng.random((48, 48)), (0, 0), 3) > 0.5).astype(np.uint8) for _ in range(20)]
    for mask in [ring, *blobs]:
        out, _ = corrupt_masks(mask[None], "simplify(tol=0)", seed=0, image_id=1)
        assert np.array_equal(out[0], mask)
    polys = simplify_polygons(ring, 1)
    assert [hole for _, hole in polys] == [False, True, False]  # outside in


def test_drop_removes_about_p_of_many_instances_and_levels_nest():
    masks = _copies(np.ones((4, 4), np.uint8), 2000)
    _, keep10 = corrupt_masks(masks, "drop(p=0.1)", seed=0, image_id=7)
    _, keep20 = corrupt_masks(masks, "drop(p=0.2)", seed=0, image_id=7)
    assert abs((~keep10).mean() - 0.1) < 0.03 and abs((~keep20).mean() - 0.2) < 0.04  # sd 0.007, 0.009
    assert np.all(~keep20[~keep10])  # dropped at 0.1 => dropped at 0.2
    assert corrupt_masks(masks[:50], "drop(p=1)", 0, 1)[1].sum() == 0
    assert corrupt_masks(masks[:50], "drop(p=0)", 0, 1)[1].all()


def test_combining_keeps_each_corruptions_draws():
    masks = _copies(_ellipse(), 60)
    both, keep_both = corrupt_masks(masks, "boundary(px=2) + drop(p=0.3)", seed=4, image_id=2)
    alone, _ = corrupt_masks(masks, "boundary(px=2)", seed=4, image_id=2)
    _, keep_drop = corrupt_masks(masks, "drop(p=0.3)", seed=4, image_id=2)
    assert np.array_equal(keep_both, keep_drop) and 0 < keep_both.sum() < 60
    assert np.array_equal(both[keep_both], alone[keep_both]) and not both[~keep_both].any()


def test_none_leaves_masks_alone():
    masks = _copies(_ellipse(), 3)
    out, keep = corrupt_masks(masks, "none", seed=0, image_id=1)
    assert np.array_equal(out, masks) and keep.all() and out is not masks


# --- determinism ---------------------------------------------------------------------------------


def test_draws_depend_on_seed_image_and_instance_only():
    masks = _copies(_ellipse(), 12)
    spec = "boundary(px=3) + shift(px=3) + drop(p=0.2)"
    a, ka = corrupt_masks(masks, spec, seed=1, image_id=5)
    b, kb = LabelNoise(spec, seed=1).corrupt(masks, image_id=5)
    assert np.array_equal(a, b) and np.array_equal(ka, kb)
    # instance k's corruption does not depend on the other instances of its image
    part, _ = corrupt_masks(masks[:4], spec, seed=1, image_id=5)
    assert np.array_equal(part, a[:4])
    assert not np.array_equal(corrupt_masks(masks, spec, seed=2, image_id=5)[0], a)
    assert not np.array_equal(corrupt_masks(masks, spec, seed=1, image_id=6)[0], a)
    assert not np.array_equal(a[0], a[1]) or not np.array_equal(a[1], a[2])  # instances differ


def test_the_order_images_are_read_in_does_not_matter():
    masks = {i: _copies(_ellipse(axes=(20 + i, 12)), 3) for i in range(1, 6)}
    forward, backward = LabelNoise("boundary(px=2)", 3), LabelNoise("boundary(px=2)", 3)
    first = {i: forward.corrupt(masks[i], i)[0] for i in masks}
    second = {i: backward.corrupt(masks[i], i)[0] for i in reversed(masks)}
    again = {i: forward.corrupt(masks[i], i)[0] for i in masks}  # and every epoch sees the same
    assert all(np.array_equal(first[i], second[i]) and np.array_equal(first[i], again[i]) for i in masks)


def test_crowd_regions_are_left_alone():
    masks = _copies(_ellipse(), 3)
    crowd = np.array([False, True, False])
    noise = LabelNoise("erode(px=60)", 0)  # erodes every ordinary instance away
    out, keep = noise.corrupt(masks, 1, crowd=crowd)
    assert keep.tolist() == [False, True, False] and np.array_equal(out[1], masks[1])
    assert noise.counts.instances == 2 and noise.counts.emptied == 2


def test_sample_level_noise_rederives_boxes_and_filters_every_array():
    masks = np.stack([_ellipse(centre=(30, 30)), _ellipse(centre=(60, 60))])
    sample = {
        "image": np.zeros((96, 96, 3), np.float32),
        "masks": masks,
        "labels": np.array([1, 2]),
        "iscrowd": np.array([False, False]),
        "boxes": np.zeros((2, 4), np.float32),
        "scale": 1.0,
    }
    out = LabelNoise("dilate(px=4) + drop(p=0.5)", seed=0)(sample, image_id=3)
    kept = corrupt_masks(masks, "drop(p=0.5)", 0, 3)[1]
    assert len(out["masks"]) == len(out["labels"]) == len(out["iscrowd"]) == len(out["boxes"]) == kept.sum()
    assert out["labels"].tolist() == sample["labels"][kept].tolist()
    for m, box in zip(out["masks"], out["boxes"], strict=True):
        ys, xs = np.nonzero(m)
        assert box.tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]  # the tight box
    assert sample["masks"] is masks and sample["boxes"].sum() == 0  # the input is not changed


def test_dense_masks_are_corrupted_per_connected_component():
    mask = np.maximum(_ellipse(centre=(28, 28), axes=(14, 9)), _ellipse(centre=(68, 68), axes=(14, 9)))
    noise = LabelNoise("dilate(px=3)", 0)
    grown = noise.corrupt_dense(mask.astype(np.float32), image_id=1)
    assert grown.dtype == np.float32 and np.all(grown >= mask) and grown.sum() > mask.sum()
    assert noise.counts.instances == 2
    dropped = LabelNoise("drop(p=1)", 0).corrupt_dense(mask, 1)
    assert dropped.sum() == 0
    assert np.array_equal(LabelNoise("drop(p=1)", 0).corrupt_dense(np.zeros((8, 8)), 1), np.zeros((8, 8)))
