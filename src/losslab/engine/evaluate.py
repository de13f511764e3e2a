"""COCO evaluation: mask, box and boundary AP at every IoU threshold, through faster-coco-eval.

``evaluate_coco`` returns the numbers pycocotools' ``COCOeval`` gives for the same input, in
percent: ``AP`` (IoU 0.50:0.95), ``AP50`` ... ``AP95`` (one per IoU threshold, averaged the way
``COCOeval.summarize`` averages AP50/AP75), ``APs/APm/APl`` and ``AR1/AR10/AR100``.

Conventions (they follow pycocotools, so that numbers stay comparable with published ones):

* Values are ``100 x`` COCOeval's. Where COCOeval has nothing to average (no ground-truth object
  in that category / area range, e.g. ``APs`` on a dataset without small objects, or every metric
  on images without annotations) it returns its sentinel ``-1``; we return ``NaN`` there
  ("undefined"), so that no table, mean or comparison can take it for a score of -1 or 0. NaN
  survives JSON (Python writes and reads it), the study store keeps it as NULL, and
  ``run_experiment`` fails a run whose mask AP is NaN. The PR curves use NaN the same way.
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

``evaluate_model`` runs a model over a dataset through ``InstanceEvaluator`` (or the dense
``DenseEvaluator``) and returns the metrics with the report's details (PR curves, per-image AP).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from faster_coco_eval import COCO, COCOeval_faster
from torch import nn
from torch.utils.data import DataLoader, Dataset

from losslab.engine.coco_results import predictions_to_coco
from losslab.engine.dense_metrics import DenseEvaluator
from losslab.engine.mask_fill import FillMeter
from losslab.engine.metric_keys import AP_KEYS, IOU_THRESHOLDS, METRIC_KEYS
from losslab.engine.train import to_device

# ``predictions_to_coco`` and ``METRIC_KEYS`` live in their own modules and are part of this one's API.
__all__ = [
    "IOU_TYPES",
    "METRIC_KEYS",
    "UNDEFINED",
    "Evaluation",
    "InstanceEvaluator",
    "evaluate_coco",
    "evaluate_coco_with_pr",
    "evaluate_model",
    "pr_curves_from_precision",
    "predictions_to_coco",
    "summarize_precision",
]

IOU_TYPES = ("segm", "bbox", "boundary")
#: An undefined metric. One object for all of them: Python compares containers by identity before
#: ``==``, so two evaluations of the same input still compare equal although NaN != NaN.
UNDEFINED = float("nan")


def _percent(values: np.ndarray) -> float:
    """COCOeval's ``_summarize`` average of the entries > -1, in percent; NaN when there are none."""
    valid = values[values > -1]
    return float(np.mean(valid) * 100.0) if valid.size else UNDEFINED


def summarize_precision(precision: np.ndarray, recall: np.ndarray) -> dict[str, float]:
    """The metrics of ``METRIC_KEYS`` from COCOeval's accumulated arrays.

    Args:
        precision: ``eval["precision"]``, -1 where a category has no ground truth (COCOeval's sentinel).
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
    for t, key in enumerate(AP_KEYS):
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
    thresholds (``"mean"``). Values are fractions in [0, 1] (not percent); NaN where no category
    has ground truth. COCO's interpolated precision is 0 beyond the highest recall reached.

    Shape:
        precision ``(10, 101, K, 4, 3)``; each returned list has 101 entries.
    """
    p = precision[:, :, :, 0, 2]  # (T, R, K)
    valid = p > -1
    sums = np.where(valid, p, 0.0)

    def _mean(s: np.ndarray, n: np.ndarray) -> list[float]:
        return [float(v) if c else UNDEFINED for v, c in zip(s / np.maximum(n, 1), n, strict=True)]

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

    Args:
        gt, detections, iou_types: as ``evaluate_coco``.
        img_ids: evaluate on these images only (default: every image of ``gt``).
        use_mask_area: for ``segm``/``boundary``, size classes from the mask area (see module doc).
        boundary_dilation_ratio: boundary width as a fraction of the image diagonal.

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
    **options: Any,
) -> dict[str, dict[str, float]]:
    """COCO AP/AR of ``detections`` against ``gt``, per IoU type, in percent.

    Args:
        gt: a COCO ground-truth dict or the path of its json (never modified).
        detections: a list of COCO result dicts (``image_id``, ``category_id``, ``score``, ``bbox``
            as xywh, ``segmentation`` as RLE) or the path of such a json; may be empty.
        iou_types: any of ``"segm"``, ``"bbox"``, ``"boundary"``.
        **options: ``evaluate_coco_with_pr``'s keywords: ``img_ids`` (evaluate on these images only),
            ``use_mask_area`` (size classes of ``segm``/``boundary`` from the mask area, see the
            module doc), ``boundary_dilation_ratio`` (boundary width as a fraction of the diagonal).

    Returns:
        ``{iou_type: {"AP", "AP50", "AP55", ..., "AP95", "APs", "APm", "APl", "AR1", "AR10",
        "AR100"}}``; NaN marks a metric COCOeval leaves undefined (its -1: no ground truth).

    Raises:
        ValueError: an unknown IoU type, a malformed ground truth, or a detection that lacks a key
            or names an image / category the ground truth does not have.
    """
    return evaluate_coco_with_pr(gt, detections, iou_types, **options)[0]


def _above(pred: dict[str, torch.Tensor], threshold: float) -> dict[str, torch.Tensor]:
    """One image's detections scoring at least ``threshold`` (every per-detection tensor filtered)."""
    keep = pred["scores"] >= threshold
    n = int(keep.shape[0])
    return {k: v[keep] if isinstance(v, torch.Tensor) and v.dim() and v.shape[0] == n else v for k, v in pred.items()}


class InstanceEvaluator:
    """COCO evaluation of an instance-segmentation model, detectron2 style.

    ``reset()``, then ``process(targets, preds)`` per batch, then ``evaluate()`` gives
    ``{iou_type: metrics}`` over the images processed (the others are left out, so a partial
    pass over the validation set is evaluated on what it saw), and with ``segm`` also
    ``"mask_fill"``: the percent of its box that each mask covers, over the detections scoring at
    least 0.5 and over the ground truth (``losslab.engine.mask_fill``: how masks collapse). Mask
    AP uses the mask area for the size classes (``use_mask_area=True``), as YOLACT's separate mask results do.

    Args:
        gt: the COCO ground truth (dict or json path, e.g. the dataset's ``ann_file``).
        label_to_cat: model label (1..C) -> COCO category id (the dataset's ``label_to_cat``).
        iou_types: subset of ``("segm", "bbox", "boundary")``.
        mask_threshold: probability above which a mask pixel is foreground.
        use_mask_area: size classes of mask/boundary AP from the mask area (see ``evaluate_coco``).
        score_threshold: detections scoring below this are left out (the trainer key
            ``eval_score_threshold``; 0 keeps them all).

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
        score_threshold: float = 0.0,
    ):
        self.gt = _load_json(gt, "ground-truth")  # read once, copied by each evaluation
        self.score_threshold = float(score_threshold)
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
        self.fill = FillMeter(self.mask_threshold)

    def process(self, targets: Sequence[dict[str, Any]], preds: Sequence[dict[str, torch.Tensor]]) -> None:
        """Add one batch: the dataset's targets and the model's eval outputs for the same images."""
        if self.score_threshold > 0:
            preds = [_above(p, self.score_threshold) for p in preds]
        self.detections.extend(predictions_to_coco(preds, targets, self.label_to_cat, self.mask_threshold))
        self._img_ids.update(int(t["image_id"]) for t in targets)
        self.fill.update(targets, preds)

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
        if "segm" in self.iou_types:
            metrics["mask_fill"] = self.fill.result()
        return metrics

    def per_image_ap(self, iou_type: str = "segm") -> dict[int, float]:
        """COCO AP of each processed image that has a non-crowd object, evaluated on its own.

        These per-image scores feed the bootstrap interval of a single-seed study (resampling the
        validation images); their mean is not the dataset AP, which pools detections across images.
        Each image is evaluated against its own slice of the ground truth (its image entry and
        annotations), so nothing is copied per image beyond that image's annotations.
        """
        anns: dict[int, list[dict]] = {}
        for a in self.gt.get("annotations", []):
            anns.setdefault(int(a["image_id"]), []).append(a)
        with_objects = {i for i, group in anns.items() if any(not a.get("iscrowd", 0) for a in group)}
        dets: dict[int, list[dict]] = {i: [] for i in with_objects & self._img_ids}
        for det in self.detections:
            if det["image_id"] in dets:
                dets[det["image_id"]].append(det)
        images = {int(im["id"]): im for im in self.gt["images"]}
        out = {}
        for img in sorted(dets):
            gt = {**self.gt, "images": [images[img]], "annotations": anns[img]}
            out[img] = evaluate_coco(gt, dets[img], (iou_type,), use_mask_area=self.use_mask_area)[iou_type]["AP"]
        return out


@dataclass
class Evaluation:
    """What ``evaluate_model`` measured.

    Attributes:
        metrics: ``{iou_type: {metric: value}}`` (instance) or ``{"mask": ...[, "depth": ...]}`` (dense).
        details: for the instance task ``{"pr": {iou_type: curves}, "per_image": {"segm": {image_id: AP}}}``
            (``per_image`` only when asked for), what the study report plots; empty for the dense task.
    """

    metrics: dict[str, dict[str, float]]
    details: dict[str, Any] = field(default_factory=dict)


@torch.no_grad()
def evaluate_model(
    model: nn.Module,
    dataset: Dataset,
    task: str,
    device: torch.device | str = "cpu",
    batch_size: int = 8,
    collate_fn: Callable[[list], Any] | None = None,
    workers: int = 0,
    per_image: bool = False,
    score_threshold: float = 0.0,
) -> Evaluation:
    """The evaluator matching ``task`` over the whole ``dataset``, in one pass without gradients.

    Instance task: ``InstanceEvaluator`` (COCO segm / bbox / boundary AP against the dataset's
    ``ann_file``, labels mapped with its ``label_to_cat``); dense task: ``DenseEvaluator`` (IoU,
    Dice, Boundary IoU, depth errors). ``per_image`` adds each image's mask AP to the details
    (one COCOeval per image: asked for by the final evaluation of a run, not by periodic ones).
    ``score_threshold`` leaves out instance detections scoring below it. The model's train/eval
    mode is restored afterwards.
    """
    if task == "instance":
        # the json as the dataset read it (integer ids, flat polygons wrapped), else the file itself
        gt = getattr(dataset, "gt", dataset.ann_file)
        evaluator: Any = InstanceEvaluator(gt, dataset.label_to_cat, score_threshold=score_threshold)
    else:
        evaluator = DenseEvaluator()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate_fn, num_workers=workers)
    was_training = model.training
    model.eval()
    try:
        for images, targets in loader:
            evaluator.process(targets, to_device(model(images.to(device)), torch.device("cpu")))
    finally:
        model.train(was_training)
    metrics = evaluator.evaluate()
    if task != "instance":
        return Evaluation(metrics)
    details: dict[str, Any] = {"pr": evaluator.pr_curves}
    if per_image:
        details["per_image"] = {"segm": evaluator.per_image_ap("segm")}
    return Evaluation(metrics, details)
