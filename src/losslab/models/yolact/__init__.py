"""YOLACT and YOLACT++ (Bolya et al., ICCV 2019 / TPAMI 2020) with a pluggable mask loss.

>>> from losslab.models import create_model
>>> model = create_model("yolact_tiny", mask_loss="0.5*mse + bce", num_classes=1)
"""

from losslab.models.yolact.config import YolactConfig
from losslab.models.yolact.detect import detect, fast_nms, standard_nms
from losslab.models.yolact.model import Yolact, count_parameters
from losslab.models.yolact.multibox_loss import MultiBoxLoss, YolactOutputs

__all__ = [
    "MultiBoxLoss",
    "Yolact",
    "YolactConfig",
    "YolactOutputs",
    "count_parameters",
    "detect",
    "fast_nms",
    "standard_nms",
]
