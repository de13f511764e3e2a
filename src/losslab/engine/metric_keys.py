"""The names of COCO's metrics, in the order COCOeval and the paper's tables give them.

Kept free of imports so that the study report (which does not load torch) and the evaluator share
one list.
"""

from __future__ import annotations

__all__ = ["AP_KEYS", "IOU_THRESHOLDS", "METRIC_KEYS", "PAPER_COLUMNS"]

#: COCO's ten IoU thresholds, 0.50 ... 0.95.
IOU_THRESHOLDS = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))
#: AP at each IoU threshold: ``"AP50"``, ``"AP55"``, ... ``"AP95"``.
AP_KEYS = tuple(f"AP{round(t * 100)}" for t in IOU_THRESHOLDS)
#: The paper's row: AP over 0.50:0.95 (``"AP"``, "all"), then AP50 ... AP95.
PAPER_COLUMNS = ("AP", *AP_KEYS)
#: Every metric ``evaluate_coco`` returns per IoU type.
METRIC_KEYS = (*PAPER_COLUMNS, "APs", "APm", "APl", "AR1", "AR10", "AR100")
