"""COCO evaluation: mask, box and boundary AP at every IoU threshold, through faster-coco-eval.

``evaluate_coco`` returns the numbers pycocotools' ``COCOeval`` gives for the same input, in
percent: ``AP`` (IoU 0.50:0.95), ``AP50`` ... ``AP95`` (one per IoU threshold, averaged the way
``COCOeval.summarize`` averages AP50/AP75), ``APs/APm/APl`` and ``AR1/AR10/AR100``.

Conventions (they follow pycocotools, so that numbers stay comparable with published ones):

* Values are ``100 x`` COCOeval's. Where COCOeval has nothing to average (no ground-truth object
  in that category / area range, e.g. ``APs`` on a dataset without small objects) it returns
  ``-1``; we keep ``-1.0`` as that sentinel (not ``-100``). Treat negative values as "undefined".
* An empty detection list is valid and gives ``0.0`` wherever ground truth exists (pycocotools
  itself would crash in ``loadRes`` on ``[]``; ``COCOeval`` on an empty result set gives 0).
* ``boundary`` is Boundary AP (Cheng et al., CVPR 2021): the IoU of a detection and a non-crowd
  object is ``min(mask IoU, boundary IoU)``, the boundary being the mask pixels within
  ``d = round(0.02 x image diagonal)`` pixels of the contour; crowd regions use the mask IoU.
  This is the definition of the authors' boundary-iou-api, which faster-coco-eval implements.
* ``COCOeval`` takes the detection area from ``bbox`` whenever a result has one, even for mask
  AP; this changes only APs/APm/APl. ``use_mask_area=True`` drops ``bbox`` for ``segm`` and
  ``boundary`` so the mask area decides the size class, as YOLACT (separate mask json) and
  detectron2 do. The default keeps pycocotools' behaviour on the given input.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pycocotools.mask as mask_utils
import torch
import torch.nn.functional as F
from faster_coco_eval import COCO, COCOeval_faster

__all__ = [
    "IOU_TYPES",
    "METRIC_KEYS",
    "InstanceEvaluator",
    "evaluate_coco",
    "evaluate_coco_with_pr",
    "pr_curves_from_precision",
    "predictions_to_coco",
    "summarize_precision",
]

IOU_TYPES = ("segm", "bbox", "boundary")
IOU_THRESHOLDS = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))
_AP_AT = tuple(f"AP{round(t * 100)}" for t in IOU_THRESHOLDS)
METRIC_KEYS = ("AP", *_AP_AT, "APs", "APm", "APl", "AR1", "AR10", "AR100")


def _percent(values: np.ndarray) -> float:
    """COCOeval's ``_summarize`` average of the entries > -1, in percent; -1 when there are none."""
    valid = values[values > -1]
    return float(np.mean(valid) * 100.0) if valid.size else -1.0


def summarize_precision(precision: np.ndarray, recall: np.ndarray) -> dict[str, float]:
    """The metrics of ``METRIC_KEYS`` from COCOeval's accumulated arrays.

    Args:
        precision: ``eval["precision"]``, -1 where a category has no ground truth.
        recall: ``eval["recall"]``.

    Shape:
        precision ``(T=10, R=101, K, A=4, M=3)``; recall ``(T, K, A, M)``; the area ranges are
        all/small/medium/large and the maxDets 1/10/100 (COCOeval's defaults).
    """
    if precision.ndim != 5 or precision.shape[0] != len(IOU_THRESHOLDS) or precision.shape[3:] != (4, 3):
        raise ValueError(
            f"precision has shape {precision.shape}: expected (10, 101, K, 4, 3) from COCOeval's "
            "default parameters (10 IoU thresholds, 4 area ranges, maxDets 1/10/100)"
        )
    out = {"AP": _percent(precision[:, :, :, 0, 2])}
    for t, key in enumerate(_AP_AT):
        out[key] = _percent(precision[t, :, :, 0, 2])
    for a, key in enumerate(("APs", "APm", "APl"), start=1):
        out[key] = _percent(precision[:, :, :, a, 2])
    for m, key in enumerate(("AR1", "AR10", "AR100")):
        out[key] = _percent(recall[:, :, 0, m])
    return out


def pr_curves_from_precision(precision: np.ndarray) -> dict[str, list[float]]:
    """Precision-recall curves for the report's PR plots (area all, maxDets 100).

    Precision at each of COCO's 101 recall points, averaged over the categories that have
    ground truth: at IoU 0.50 (``"iou50"``), 0.75 (``"iou75"``) and averaged over the ten
    thresholds (``"mean"``). Values are fractions in [0, 1] (not percent); -1 where no category
    has ground truth. COCO's interpolated precision is 0 beyond the highest recall reached.

    Shape:
        precision ``(10, 101, K, 4, 3)``; each returned list has 101 entries.
    """
    p = precision[:, :, :, 0, 2]  # (T, R, K)
    valid = p > -1
    sums = np.where(valid, p, 0.0)

    def _mean(s: np.ndarray, n: np.ndarray) -> list[float]:
        return [float(v) if c else -1.0 for v, c in zip(s / np.maximum(n, 1), n, strict=True)]

    return {
        "recall": [round(r, 2) for r in np.linspace(0.0, 1.0, 101).tolist()],
        "iou50": _mean(sums[0].sum(-1), valid[0].sum(-1)),
        "iou75": _mean(sums[5].sum(-1), valid[5].sum(-1)),
        "mean": _mean(sums.sum((0, 2)), valid.sum((0, 2))),
    }


def _load_json(obj: Any, what: str) -> Any:
    if isinstance(obj, (str, Path)):
        path = Path(obj)
        if not path.is_file():
            raise ValueError(f"{what} file {str(path)!r} does not exist; pass a COCO json path or the data")
        with path.open() as f:
            return json.load(f)
    return obj


def _load_gt(gt: dict | str | Path) -> COCO:
    """A private copy of the ground truth as a faster-coco-eval ``COCO``.

    COCOeval writes into the annotations (``ignore``, RLEs), so the caller's dict is never used
    directly. Annotation ids are renumbered 1..n when any is 0 or repeated: pycocotools uses id 0
    to mean "unmatched", which would silently corrupt the matching.
    """
    data = _load_json(gt, "ground-truth")
    if not isinstance(data, dict) or not {"images", "annotations", "categories"} <= data.keys():
        raise ValueError(
            "ground truth must be a COCO dict (or json path) with 'images', 'annotations' and "
            f"'categories'; got {type(data).__name__} with keys {sorted(data) if isinstance(data, dict) else '-'}"
        )
    # COCOeval sets keys on the annotation dicts (never inside them): copying each dict is
    # enough, and far cheaper than a deep copy of every RLE.
    data = {**data, "annotations": [dict(a) for a in data["annotations"]]}
    anns = data["annotations"]
    for ann in anns:
        if "area" not in ann or "bbox" not in ann:
            raise ValueError(
                f"ground-truth annotation {ann.get('id')} (image {ann.get('image_id')}) lacks 'area' or "
                "'bbox'; COCOeval needs both (area decides small/medium/large)"
            )
        ann.setdefault("iscrowd", 0)
    ids = [ann.get("id", 0) for ann in anns]
    if 0 in ids or len(set(ids)) != len(ids):
        for i, ann in enumerate(anns, start=1):
            ann["id"] = i
    return COCO(data)


def _load_detections(detections: Sequence[dict] | str | Path) -> list[dict]:
    dets = _load_json(detections, "detections")
    if not isinstance(dets, (list, tuple)):
        raise ValueError(f"detections must be a list of COCO result dicts (or a json path), got {type(dets)}")
    return list(dets)


def _check_detections(dets: list[dict], coco_gt: COCO, iou_type: str) -> None:
    img_ids, cat_ids = set(coco_gt.getImgIds()), set(coco_gt.getCatIds())
    need = "bbox" if iou_type == "bbox" else "segmentation"
    for i, d in enumerate(dets):
        missing = [k for k in ("image_id", "category_id", "score") if k not in d]
        if missing or (need not in d and not (iou_type == "bbox" and "segmentation" in d)):
            raise ValueError(
                f"detection {i} lacks {missing or [need]}: a COCO result needs image_id, category_id, "
                f"score and (for iou_type {iou_type!r}) {need}"
            )
        if d["image_id"] not in img_ids:
            raise ValueError(f"detection {i} has image_id {d['image_id']} which is not in the ground truth")
        if d["category_id"] not in cat_ids:
            raise ValueError(
                f"detection {i} has category_id {d['category_id']}; the ground truth has {sorted(cat_ids)} "
                "(map model labels with label_to_cat)"
            )


def _run_one(
    coco_gt: COCO,
    dets: list[dict],
    iou_type: str,
    img_ids: Sequence[int] | None,
    use_mask_area: bool,
    boundary_dilation_ratio: float,
) -> tuple[np.ndarray, np.ndarray]:
    """COCOeval (faster-coco-eval's C++ matching and accumulation) for one IoU type."""
    drop_box = use_mask_area and iou_type != "bbox"
    # loadRes and COCOeval write into the result dicts: give them copies.
    own = [{k: v for k, v in d.items() if not (drop_box and k == "bbox")} for d in dets]
    coco_dt = coco_gt.loadRes(own)
    ev = COCOeval_faster(coco_gt, coco_dt, iouType=iou_type, boundary_dilation_ratio=boundary_dilation_ratio)
    if img_ids is not None:
        ev.params.imgIds = sorted(set(img_ids))
    ev.evaluate()
    ev.accumulate()
    return np.asarray(ev.eval["precision"]), np.asarray(ev.eval["recall"])


def evaluate_coco_with_pr(
    gt: dict | str | Path,
    detections: Sequence[dict] | str | Path,
    iou_types: Sequence[str] = ("segm", "bbox"),
    *,
    img_ids: Sequence[int] | None = None,
    use_mask_area: bool = False,
    boundary_dilation_ratio: float = 0.02,
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, list[float]]]]:
    """``evaluate_coco`` plus the precision-recall curves of each IoU type.

    Returns:
        ``(metrics, curves)``: ``metrics`` as ``evaluate_coco``; ``curves[iou_type]`` as
        ``pr_curves_from_precision`` (``recall``, ``iou50``, ``iou75``, ``mean``; fractions).
    """
    unknown = [t for t in iou_types if t not in IOU_TYPES]
    if unknown or not iou_types:
        raise ValueError(f"iou_types {list(iou_types)} must be a non-empty subset of {list(IOU_TYPES)}")
    if not 0.0 < boundary_dilation_ratio < 1.0:
        raise ValueError(f"boundary_dilation_ratio={boundary_dilation_ratio} must lie in (0, 1); 0.02 is the paper's")
    coco_gt = _load_gt(gt)
    dets = _load_detections(detections)
    if img_ids is not None:
        missing = sorted(set(img_ids) - set(coco_gt.getImgIds()))
        if missing:
            raise ValueError(f"img_ids {missing[:10]} are not images of the ground truth")
    metrics, curves = {}, {}
    for iou_type in iou_types:
        _check_detections(dets, coco_gt, iou_type)
        precision, recall = _run_one(coco_gt, dets, iou_type, img_ids, use_mask_area, boundary_dilation_ratio)
        metrics[iou_type] = summarize_precision(precision, recall)
        curves[iou_type] = pr_curves_from_precision(precision)
    return metrics, curves


def evaluate_coco(
    gt: dict | str | Path,
    detections: Sequence[dict] | str | Path,
    iou_types: Sequence[str] = ("segm", "bbox"),
    *,
    img_ids: Sequence[int] | None = None,
    use_mask_area: bool = False,
    boundary_dilation_ratio: float = 0.02,
) -> dict[str, dict[str, float]]:
    """COCO AP/AR of ``detections`` against ``gt``, per IoU type, in percent.

    Args:
        gt: a COCO ground-truth dict or the path of its json (never modified).
        detections: a list of COCO result dicts (``image_id``, ``category_id``, ``score``, ``bbox``
            as xywh, ``segmentation`` as RLE) or the path of such a json; may be empty.
        iou_types: any of ``"segm"``, ``"bbox"``, ``"boundary"``.
        img_ids: evaluate on these images only (default: every image of ``gt``).
        use_mask_area: for ``segm``/``boundary``, size classes from the mask area (see module doc).
        boundary_dilation_ratio: boundary width as a fraction of the image diagonal.

    Returns:
        ``{iou_type: {"AP", "AP50", "AP55", ..., "AP95", "APs", "APm", "APl", "AR1", "AR10",
        "AR100"}}``; -1.0 marks a metric COCOeval leaves undefined (no ground truth).

    Raises:
        ValueError: an unknown IoU type, a malformed ground truth, or a detection that lacks a key
            or names an image / category the ground truth does not have.
    """
    metrics, _ = evaluate_coco_with_pr(
        gt,
        detections,
        iou_types,
        img_ids=img_ids,
        use_mask_area=use_mask_area,
        boundary_dilation_ratio=boundary_dilation_ratio,
    )
    return metrics


def _valid_extent(h: int, w: int, scale: float, input_hw: Sequence[int]) -> tuple[int, int]:
    """``(h_in, w_in)``: where the letterboxed image lies in the input (the rest is padding).

    Rounded as the data transforms round the resized size.
    """
    h_in = min(max(round(h * scale), 1), int(input_hw[0]))
    w_in = min(max(round(w * scale), 1), int(input_hw[1]))
    return h_in, w_in


def _boxes_to_xywh(boxes: torch.Tensor, scale: float, h: int, w: int) -> np.ndarray:
    """Input-pixel xyxy boxes ``(k, 4)`` -> original-image xywh ``(k, 4)``, clipped to the image."""
    xyxy = (boxes.detach().float().cpu() / scale).numpy()
    xyxy[:, 0::2] = xyxy[:, 0::2].clip(0, w)
    xyxy[:, 1::2] = xyxy[:, 1::2].clip(0, h)
    return np.concatenate([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]], axis=1)


def _masks_to_rle(masks: torch.Tensor, h: int, w: int, h_in: int, w_in: int, threshold: float) -> list[dict]:
    """Crop the letterboxed region, resize to the original size, threshold and RLE-encode.

    Shape:
        masks ``(k, S, S)`` probabilities; one RLE per mask, of size ``(h, w)``.
    """
    rles: list[dict] = []
    # Chunks keep the float copy at the original resolution small (k x h x w floats).
    for chunk in masks.split(32):
        crop = chunk[:, None, :h_in, :w_in].float()
        full = F.interpolate(crop, size=(h, w), mode="bilinear", align_corners=False)[:, 0]
        binary = (full > threshold).to(torch.uint8).cpu().numpy()
        for r in mask_utils.encode(np.asfortranarray(binary.transpose(1, 2, 0))):
            r["counts"] = r["counts"].decode("ascii")  # json-serialisable, and what COCO results use
            rles.append(r)
    return rles


def predictions_to_coco(
    preds: Sequence[dict[str, torch.Tensor]],
    targets: Sequence[dict[str, Any]],
    label_to_cat: dict[int, int],
    mask_threshold: float = 0.5,
) -> list[dict]:
    """Model outputs in input pixels to COCO result dicts on the original images.

    The input is the original image resized by ``scale`` and padded at the right and bottom
    (letterbox). Masks are cropped to the valid ``orig_size x scale`` region, resized to
    ``orig_size`` (bilinear), thresholded (``> mask_threshold``) and RLE-encoded; boxes are
    divided by ``scale``, clipped to the image and written as xywh.

    Args:
        preds: per image ``boxes`` ``(k, 4)`` xyxy, ``scores`` ``(k,)``, ``labels`` ``(k,)`` in 1..C,
            ``masks`` ``(k, S, S)`` in [0, 1] (optional: without it, results have no segmentation).
        targets: per image ``image_id``, ``orig_size`` ``(h, w)``, ``scale``.
        label_to_cat: model label -> COCO category id.
        mask_threshold: probability above which a pixel belongs to the mask.

    Returns:
        One dict per detection: ``image_id``, ``category_id``, ``bbox``, ``score``[, ``segmentation``].
    """
    if len(preds) != len(targets):
        raise ValueError(f"{len(preds)} predictions for {len(targets)} targets: pass one of each per image")
    results: list[dict] = []
    for pred, target in zip(preds, targets, strict=True):
        for key in ("image_id", "orig_size", "scale"):
            if key not in target:
                raise ValueError(f"target lacks {key!r}: the dataset must give image_id, orig_size and scale")
        boxes, scores, labels = pred["boxes"], pred["scores"], pred["labels"]
        k = int(scores.shape[0])
        if k == 0:
            continue
        if boxes.shape != (k, 4) or labels.shape != (k,):
            raise ValueError(f"boxes {tuple(boxes.shape)} / labels {tuple(labels.shape)} must be ({k}, 4) / ({k},)")
        cats = []
        for label in labels.tolist():
            if int(label) not in label_to_cat:
                raise ValueError(f"label {label} is not in label_to_cat {label_to_cat}; labels run 1..C")
            cats.append(int(label_to_cat[int(label)]))
        h, w = int(target["orig_size"][0]), int(target["orig_size"][1])
        scale = float(target["scale"])
        xywh = _boxes_to_xywh(boxes, scale, h, w)
        masks = pred.get("masks")
        segms: list[dict | None] = [None] * k
        if masks is not None:
            if masks.dim() != 3 or masks.shape[0] != k:
                raise ValueError(f"masks have shape {tuple(masks.shape)}: expected ({k}, S, S)")
            h_in, w_in = _valid_extent(h, w, scale, masks.shape[-2:])
            segms = list(_masks_to_rle(masks.detach(), h, w, h_in, w_in, mask_threshold))
        image_id = int(target["image_id"])
        for i, score in enumerate(scores.detach().float().cpu().tolist()):
            det = {"image_id": image_id, "category_id": cats[i], "bbox": xywh[i].tolist(), "score": score}
            if segms[i] is not None:
                det["segmentation"] = segms[i]
            results.append(det)
    return results


class InstanceEvaluator:
    """COCO evaluation of an instance-segmentation model, detectron2 style.

    ``reset()``, then ``process(targets, preds)`` per batch, then ``evaluate()`` gives
    ``{iou_type: metrics}`` over the images processed (the others are left out, so a partial
    pass over the validation set is evaluated on what it saw). Mask AP uses the mask area for the
    size classes (``use_mask_area=True``), as YOLACT's separate mask results do.

    Args:
        gt: the COCO ground truth (dict or json path, e.g. the dataset's ``ann_file``).
        label_to_cat: model label (1..C) -> COCO category id (the dataset's ``label_to_cat``).
        iou_types: subset of ``("segm", "bbox", "boundary")``.
        mask_threshold: probability above which a mask pixel is foreground.
        use_mask_area: size classes of mask/boundary AP from the mask area (see ``evaluate_coco``).

    Attributes:
        detections: the COCO result dicts gathered so far (write them to json if wanted).
        pr_curves: ``{iou_type: curves}`` of the last ``evaluate()`` (see ``pr_curves_from_precision``).
    """

    def __init__(
        self,
        gt: dict | str | Path,
        label_to_cat: dict[int, int],
        iou_types: Sequence[str] = IOU_TYPES,
        mask_threshold: float = 0.5,
        use_mask_area: bool = True,
    ):
        self.gt = _load_json(gt, "ground-truth")  # read once, copied by each evaluation
        self.label_to_cat = dict(label_to_cat)
        self.iou_types = tuple(iou_types)
        self.mask_threshold = mask_threshold
        self.use_mask_area = use_mask_area
        self.pr_curves: dict[str, dict[str, list[float]]] = {}
        self.reset()

    def reset(self) -> None:
        """Forget the detections and images of a previous pass."""
        self.detections: list[dict] = []
        self._img_ids: set[int] = set()

    def process(self, targets: Sequence[dict[str, Any]], preds: Sequence[dict[str, torch.Tensor]]) -> None:
        """Add one batch: the dataset's targets and the model's eval outputs for the same images."""
        self.detections.extend(predictions_to_coco(preds, targets, self.label_to_cat, self.mask_threshold))
        self._img_ids.update(int(t["image_id"]) for t in targets)

    def evaluate(self) -> dict[str, dict[str, float]]:
        """COCO metrics over the processed images, in percent (see ``evaluate_coco``)."""
        if not self._img_ids:
            raise ValueError("InstanceEvaluator.evaluate() before any process(): no image to evaluate")
        metrics, self.pr_curves = evaluate_coco_with_pr(
            self.gt,
            self.detections,
            self.iou_types,
            img_ids=sorted(self._img_ids),
            use_mask_area=self.use_mask_area,
        )
        return metrics

    def per_image_ap(self, iou_type: str = "segm") -> dict[int, float]:
        """COCO AP of each processed image that has a non-crowd object, evaluated on its own.

        These per-image scores feed the bootstrap interval of a single-seed study (resampling the
        validation images); their mean is not the dataset AP, which pools detections across images.
        """
        with_objects = {
            int(a["image_id"]) for a in self.gt.get("annotations", []) if not a.get("iscrowd", 0)
        } & self._img_ids
        by_image: dict[int, list[dict]] = {i: [] for i in with_objects}
        for det in self.detections:
            if det["image_id"] in by_image:
                by_image[det["image_id"]].append(det)
        return {
            img: evaluate_coco(self.gt, dets, (iou_type,), img_ids=[img], use_mask_area=self.use_mask_area)[iou_type][
                "AP"
            ]
            for img, dets in sorted(by_image.items())
        }
