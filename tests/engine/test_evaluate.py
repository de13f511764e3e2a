"""evaluate_coco against pycocotools' COCOeval on hand-made and random cases; the PR curves;
predictions_to_coco (letterbox undone) and InstanceEvaluator."""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pycocotools.mask as mask_utils
import pytest
import torch

from losslab.engine.evaluate import (
    METRIC_KEYS,
    InstanceEvaluator,
    evaluate_coco,
    evaluate_coco_with_pr,
    predictions_to_coco,
)
from tests.engine._coco_cases import pycocotools_eval, pycocotools_metrics, random_case, rle_of

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def assert_same_metrics(ours: dict, ref: dict) -> None:
    assert list(ours) == list(METRIC_KEYS)
    for key in METRIC_KEYS:
        assert ours[key] == pytest.approx(ref[key], abs=1e-9, nan_ok=True), key


def square_mask(h: int, w: int, y0: int, x0: int, y1: int, x1: int) -> np.ndarray:
    m = np.zeros((h, w), np.uint8)
    m[y0:y1, x0:x1] = 1
    return m


def ann(ann_id: int, img: int, m: np.ndarray, cat: int = 1, crowd: int = 0) -> dict:
    r = rle_of(m)
    return {
        "id": ann_id,
        "image_id": img,
        "category_id": cat,
        "segmentation": r,
        "area": float(mask_utils.area(r)),
        "bbox": mask_utils.toBbox(r).tolist(),
        "iscrowd": crowd,
    }


def det(img: int, m: np.ndarray, score: float, cat: int = 1) -> dict:
    r = rle_of(m)
    return {
        "image_id": img,
        "category_id": cat,
        "segmentation": r,
        "bbox": mask_utils.toBbox(r).tolist(),
        "score": score,
    }


def coco(images: list[tuple[int, int, int]], anns: list[dict], n_cats: int = 1) -> dict:
    return {
        "images": [{"id": i, "height": h, "width": w} for i, h, w in images],
        "annotations": anns,
        "categories": [{"id": c, "name": f"c{c}"} for c in range(1, n_cats + 1)],
    }


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("iou_type", ["segm", "bbox"])
def test_random_cases_equal_pycocotools(seed, iou_type):
    gt, dets = random_case(seed)
    # the awkward cases are all there: crowd regions, images without objects or detections
    assert any(a["iscrowd"] for a in gt["annotations"])
    img_ids = {im["id"] for im in gt["images"]}
    assert img_ids - {a["image_id"] for a in gt["annotations"]}
    assert img_ids - {d["image_id"] for d in dets}
    ours = evaluate_coco(gt, dets, (iou_type,))[iou_type]
    assert_same_metrics(ours, pycocotools_metrics(pycocotools_eval(gt, dets, iou_type)))
    assert 0 < ours["AP"] < 100


def test_tied_scores_and_more_than_100_detections_equal_pycocotools():
    gt, dets = random_case(0, n_images=6)
    rng = np.random.default_rng(0)
    # 15 copies of each detection with scores rounded to 0.1: ties everywhere, > 100 per image
    many = dets + [{**d, "score": round(float(rng.random()), 1)} for d in dets for _ in range(15)]
    assert max(np.bincount([d["image_id"] for d in many])) > 100
    res = evaluate_coco(gt, many, ("segm", "bbox"))
    for iou_type in ("segm", "bbox"):
        assert_same_metrics(res[iou_type], pycocotools_metrics(pycocotools_eval(gt, many, iou_type)))


def test_mask_area_option_equals_pycocotools_on_mask_only_results():
    gt, dets = random_case(4, max_size=200)
    mask_only = [{k: v for k, v in d.items() if k != "bbox"} for d in dets]
    ours = evaluate_coco(gt, dets, ("segm",), use_mask_area=True)["segm"]
    assert_same_metrics(ours, pycocotools_metrics(pycocotools_eval(gt, mask_only, "segm")))


def test_hand_made_iou_060_detection():
    """One object, one detection of IoU 0.6: a hit at thresholds 0.50-0.60, a miss above."""
    g = square_mask(50, 50, 10, 10, 30, 30)  # 400 px
    d = square_mask(50, 50, 10, 15, 30, 35)  # 15 x 20 overlap = 300, union 500 -> IoU 0.6
    res = evaluate_coco(coco([(1, 50, 50)], [ann(1, 1, g)]), [det(1, d, 0.9)], ("segm", "bbox"))
    for iou_type in ("segm", "bbox"):
        m = res[iou_type]
        assert [m[f"AP{t}"] for t in range(50, 100, 5)] == [100.0] * 3 + [0.0] * 7
        assert m["AP"] == pytest.approx(30.0)
        assert m["AR100"] == pytest.approx(30.0)
        assert m["APs"] == pytest.approx(30.0) and math.isnan(m["APm"]) and math.isnan(m["APl"])  # undefined


def test_detection_on_a_crowd_region_is_not_a_false_positive():
    g = square_mask(60, 60, 5, 5, 25, 25)
    crowd = square_mask(60, 60, 30, 30, 60, 60)
    inside = square_mask(60, 60, 35, 35, 45, 45)
    dets = [det(1, g, 0.5), det(1, inside, 0.9)]
    with_crowd = coco([(1, 60, 60)], [ann(1, 1, g), ann(2, 1, crowd, crowd=1)])
    without = coco([(1, 60, 60)], [ann(1, 1, g), ann(2, 1, crowd, crowd=0)])
    assert evaluate_coco(with_crowd, dets, ("segm",))["segm"]["AP"] == pytest.approx(100.0)
    assert evaluate_coco(without, dets, ("segm",))["segm"]["AP"] < 100.0
    assert_same_metrics(
        evaluate_coco(with_crowd, dets, ("segm",))["segm"],
        pycocotools_metrics(pycocotools_eval(with_crowd, dets, "segm")),
    )


def test_polygon_and_uncompressed_rle_ground_truth_equal_pycocotools():
    """COCO's own formats: polygons for objects, uncompressed RLE (counts as a list) for crowds."""
    poly = {"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "area": 300.0, "bbox": [10, 10, 20, 15]}
    poly["segmentation"] = [[10, 10, 30, 10, 30, 25, 10, 25]]
    crowd_mask = np.asfortranarray(square_mask(50, 50, 30, 30, 50, 50))
    counts, prev, run = [], 0, 0
    for v in crowd_mask.flatten(order="F"):  # column-major runs, starting with zeros
        if v != prev:
            counts.append(run)
            prev, run = v, 0
        run += 1
    counts.append(run)
    crowd = {"id": 2, "image_id": 1, "category_id": 1, "iscrowd": 1, "area": 400.0, "bbox": [30, 30, 20, 20]}
    crowd["segmentation"] = {"size": [50, 50], "counts": counts}
    gt = coco([(1, 50, 50)], [poly, crowd])
    dets = [
        det(1, square_mask(50, 50, 10, 10, 25, 30), 0.8),
        det(1, square_mask(50, 50, 11, 12, 25, 30), 0.6),
        det(1, square_mask(50, 50, 35, 35, 45, 45), 0.9),
    ]
    for iou_type in ("segm", "bbox"):
        ours = evaluate_coco(gt, dets, (iou_type,))[iou_type]
        assert_same_metrics(ours, pycocotools_metrics(pycocotools_eval(gt, dets, iou_type)))
        assert ours["AP50"] == pytest.approx(100.0)


def test_image_without_objects_and_image_without_detections():
    g = square_mask(40, 40, 5, 5, 20, 20)
    gt = coco([(1, 40, 40), (2, 40, 40), (3, 40, 40)], [ann(1, 1, g), ann(2, 3, g)])
    dets = [det(1, g, 0.9), det(2, g, 0.8)]  # image 2 has no object, image 3 no detection
    for iou_type in ("segm", "bbox"):
        ours = evaluate_coco(gt, dets, (iou_type,))[iou_type]
        assert_same_metrics(ours, pycocotools_metrics(pycocotools_eval(gt, dets, iou_type)))
        assert 0 < ours["AP"] < 100 and ours["AR100"] == pytest.approx(50.0)


def test_empty_detection_list_gives_zeros_not_a_crash():
    gt, _ = random_case(0)
    res = evaluate_coco(gt, [], ("segm", "bbox", "boundary"))
    for iou_type in ("segm", "bbox"):
        assert_same_metrics(res[iou_type], pycocotools_metrics(pycocotools_eval(gt, [], iou_type)))
    for metrics in res.values():
        assert metrics["AP"] == 0.0 and metrics["AR100"] == 0.0
        assert all(v == 0.0 or math.isnan(v) for v in metrics.values())


def test_no_ground_truth_is_undefined_not_minus_one_or_zero():
    # COCOeval's -1 sentinel must never reach a table or a mean as a score: NaN, "undefined"
    gt = coco([(1, 30, 30)], [])
    metrics, curves = evaluate_coco_with_pr(gt, [det(1, square_mask(30, 30, 1, 1, 9, 9), 0.7)], ("segm",))
    assert len(metrics["segm"]) == len(METRIC_KEYS) and all(math.isnan(v) for v in metrics["segm"].values())
    assert all(math.isnan(v) for key in ("iou50", "iou75", "mean") for v in curves["segm"][key])
    assert math.isnan(json.loads(json.dumps(metrics))["segm"]["AP"])  # result.json keeps it


def test_paths_in_inputs_untouched_and_zero_annotation_ids(tmp_path):
    gt, dets = random_case(2)
    gt_copy, dets_copy = copy.deepcopy(gt), copy.deepcopy(dets)
    expected = evaluate_coco(gt, dets)
    assert gt == gt_copy and dets == dets_copy  # COCOeval writes into its inputs; we must not
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "dt.json").write_text(json.dumps(dets))
    assert evaluate_coco(tmp_path / "gt.json", str(tmp_path / "dt.json")) == expected
    zero_based = copy.deepcopy(gt)
    for a in zero_based["annotations"]:
        a["id"] -= 1  # pycocotools reads id 0 as "unmatched": we renumber
    assert evaluate_coco(zero_based, dets) == expected


@pytest.mark.parametrize(
    ("gt_change", "det_change", "message"),
    [
        (None, {"image_id": 99}, "image_id 99"),
        (None, {"category_id": 7}, "category_id 7"),
        ({"annotations": [{"id": 1, "image_id": 1, "category_id": 1}]}, None, "lacks 'area'"),
    ],
)
def test_bad_inputs_name_the_problem(gt_change, det_change, message):
    gt, dets = random_case(0)
    gt.update(gt_change or {})
    dets[0].update(det_change or {})
    with pytest.raises(ValueError, match=message):
        evaluate_coco(gt, dets)


def test_bad_iou_type_and_missing_segmentation():
    gt, dets = random_case(0)
    with pytest.raises(ValueError, match="iou_types"):
        evaluate_coco(gt, dets, ("mask",))
    with pytest.raises(ValueError, match="segmentation"):
        evaluate_coco(gt, [{k: v for k, v in d.items() if k != "segmentation"} for d in dets], ("segm",))


def test_pr_curves_match_the_precision_array():
    gt, dets = random_case(1)
    _, curves = evaluate_coco_with_pr(gt, dets, ("segm",))
    c = curves["segm"]
    p = pycocotools_eval(gt, dets, "segm").eval["precision"][:, :, :, 0, 2]
    assert len(c["recall"]) == len(c["iou50"]) == len(c["mean"]) == 101
    assert c["recall"][0] == 0.0 and c["recall"][-1] == 1.0
    np.testing.assert_allclose(c["iou50"], p[0].mean(-1), atol=1e-12)  # every category has objects
    np.testing.assert_allclose(c["iou75"], p[5].mean(-1), atol=1e-12)
    np.testing.assert_allclose(c["mean"], p.mean((0, 2)), atol=1e-12)
    assert all(a >= b for a, b in zip(c["iou50"], c["iou75"], strict=True))  # a looser IoU never hurts


# ---------------------------------------------------------------- predictions_to_coco


def test_predictions_to_coco_undoes_the_letterbox():
    h, w, size = 30, 40, 64  # scale 1.6: the image fills 48 x 64 of the 64 x 64 input
    orig = square_mask(h, w, 5, 10, 25, 30)
    probs = torch.zeros(1, size, size)
    probs[0, 8:40, 16:48] = 0.9  # the same square in input pixels
    probs[0, 50:, :] = 1.0  # padding rows: must be cropped away
    pred = {
        "boxes": torch.tensor([[16.0, 8.0, 48.0, 40.0]]),
        "scores": torch.tensor([0.75]),
        "labels": torch.tensor([1]),
        "masks": probs,
    }
    target = {"image_id": 7, "orig_size": (h, w), "scale": 1.6}
    (res,) = predictions_to_coco([pred], [target], {1: 5})
    assert res["image_id"] == 7 and res["category_id"] == 5 and res["score"] == pytest.approx(0.75)
    assert res["bbox"] == pytest.approx([10.0, 5.0, 20.0, 20.0])
    assert res["segmentation"]["size"] == [h, w] and isinstance(res["segmentation"]["counts"], str)
    np.testing.assert_array_equal(mask_utils.decode(res["segmentation"]), orig)


def test_predictions_to_coco_clips_boxes_and_handles_empty():
    pred = {
        "boxes": torch.tensor([[-5.0, -5.0, 100.0, 100.0]]),
        "scores": torch.tensor([0.5]),
        "labels": torch.tensor([2]),
    }
    (res,) = predictions_to_coco([pred], [{"image_id": 1, "orig_size": (20, 30), "scale": 2.0}], {1: 1, 2: 9})
    assert res["bbox"] == pytest.approx([0.0, 0.0, 30.0, 20.0]) and "segmentation" not in res
    empty = {"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.long)}
    assert predictions_to_coco([empty], [{"image_id": 1, "orig_size": (20, 30), "scale": 2.0}], {1: 1}) == []
    with pytest.raises(ValueError, match="label 2"):
        predictions_to_coco([pred], [{"image_id": 1, "orig_size": (20, 30), "scale": 2.0}], {1: 1})


# ---------------------------------------------------------------- InstanceEvaluator


def _perfect_outputs(gt: dict, size: int, image_ids: list[int]) -> tuple[list[dict], list[dict]]:
    """Targets and eval outputs that reproduce the ground truth exactly, in letterboxed input pixels."""
    images = {im["id"]: im for im in gt["images"]}
    targets, preds = [], []
    for img_id in image_ids:
        im = images[img_id]
        scale = size / max(im["height"], im["width"])
        anns = [a for a in gt["annotations"] if a["image_id"] == img_id and not a["iscrowd"]]
        masks = torch.zeros(len(anns), size, size)
        boxes = torch.zeros(len(anns), 4)
        for i, a in enumerate(anns):
            m = torch.from_numpy(mask_utils.decode(a["segmentation"])).float()[None, None]
            hs, ws = round(im["height"] * scale), round(im["width"] * scale)
            masks[i, :hs, :ws] = torch.nn.functional.interpolate(m, size=(hs, ws), mode="bilinear")[0, 0]
            x, y, bw, bh = a["bbox"]
            boxes[i] = torch.tensor([x, y, x + bw, y + bh]) * scale
        labels = torch.tensor([a["category_id"] for a in anns], dtype=torch.long)
        preds.append({"boxes": boxes, "scores": torch.linspace(0.9, 0.5, len(anns)), "labels": labels, "masks": masks})
        targets.append({"image_id": img_id, "orig_size": (im["height"], im["width"]), "scale": scale})
    return targets, preds


def test_instance_evaluator_on_perfect_predictions():
    g1, g2 = square_mask(48, 64, 8, 8, 40, 40), square_mask(48, 64, 10, 30, 30, 60)
    gt = coco([(1, 48, 64), (2, 48, 64), (3, 48, 64)], [ann(1, 1, g1), ann(2, 1, g2, cat=2), ann(3, 3, g1)], 2)
    ev = InstanceEvaluator(gt, {1: 1, 2: 2})
    targets, preds = _perfect_outputs(gt, 128, [1, 2])  # image 3 is never processed
    ev.process(targets[:1], preds[:1])
    ev.process(targets[1:], preds[1:])
    res = ev.evaluate()
    assert set(res) == {"segm", "bbox", "boundary", "mask_fill"}
    for iou_type in ("segm", "bbox", "boundary"):
        assert res[iou_type]["AP"] == pytest.approx(100.0) and res[iou_type]["AP95"] == pytest.approx(100.0)
    # square masks fill their boxes; these targets carry no masks, so the ground truth's fill is unknown
    assert res["mask_fill"]["detections"] > 95 and math.isnan(res["mask_fill"]["ground_truth"])
    assert ev.pr_curves["segm"]["iou50"] == [1.0] * 101
    ev.reset()
    with pytest.raises(ValueError, match="process"):
        ev.evaluate()
    targets, preds = _perfect_outputs(gt, 128, [1, 2, 3])
    ev.process(targets, [preds[0], preds[1], {k: v[:0] for k, v in preds[2].items()}])
    # image 3 now counts and is missed: category 1 reaches recall 0.5 (51 of COCO's 101 recall
    # points at precision 1), category 2 stays perfect
    assert ev.evaluate()["segm"]["AP"] == pytest.approx(100 * (51 / 101 + 1) / 2)


def test_per_image_ap_scores_each_image_alone():
    g1 = square_mask(48, 64, 8, 8, 40, 40)
    gt = coco([(1, 48, 64), (2, 48, 64), (3, 48, 64)], [ann(1, 1, g1), ann(2, 2, g1), ann(3, 3, g1)], 1)
    ev = InstanceEvaluator(gt, {1: 1}, iou_types=("segm",))
    targets, preds = _perfect_outputs(gt, 128, [1, 2, 3])
    preds[1] = {k: v[:0] for k, v in preds[1].items()}  # image 2: no detection at all
    ev.process(targets, preds)
    ev.evaluate()
    per_image = ev.per_image_ap("segm")
    assert set(per_image) == {1, 2, 3}
    assert per_image[1] == pytest.approx(100.0)
    assert per_image[3] == pytest.approx(100.0)
    assert per_image[2] == 0.0


def test_score_threshold_leaves_out_low_scoring_detections():
    """The YOLACT++ loss survey's eval.py kept detections scoring at least 0.15: a perfect detection
    scoring 0.1 is then a miss, while the default (0) keeps it."""
    g1 = square_mask(48, 64, 8, 8, 40, 40)
    gt = coco([(1, 48, 64), (2, 48, 64)], [ann(1, 1, g1), ann(2, 2, g1)], 1)
    targets, preds = _perfect_outputs(gt, 128, [1, 2])
    preds[1]["scores"] = torch.tensor([0.1])
    kept = InstanceEvaluator(gt, {1: 1}, iou_types=("segm",))
    kept.process(targets, preds)
    assert kept.evaluate()["segm"]["AP"] == pytest.approx(100.0)
    cut = InstanceEvaluator(gt, {1: 1}, iou_types=("segm",), score_threshold=0.15)
    cut.process(targets, preds)
    assert len(cut.detections) == 1
    assert cut.evaluate()["segm"]["AP"] == pytest.approx(100 * 51 / 101)  # recall 0.5 at precision 1


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5])
def test_eval_score_threshold_outside_0_1_is_refused(bad):
    from losslab.engine.config import TrainConfig

    with pytest.raises(ValueError, match="eval_score_threshold"):
        TrainConfig(eval_score_threshold=bad)
