"""A user's plugin file for the plugin tests (engine and study)."""

from __future__ import annotations

PLUGIN = '''
"""A user's mask loss."""
from torch import Tensor

from losslab.losses import MaskInputs, MaskLoss, register_loss


@register_loss("{name}", kind="region", acts_on="probabilities", description="1 - soft IoU")
class SoftIoU(MaskLoss):
    def per_instance(self, x: MaskInputs) -> Tensor:
        return 1 - (x.tp + 1) / (x.sum_p + x.sum_g - x.tp + {smooth})
'''


def write_plugin(folder, name="my_iou", smooth=1):
    """Write the plugin file NAME_plugin.py in folder, registering the loss NAME."""
    path = folder / f"{name}_plugin.py"
    path.write_text(PLUGIN.format(name=name, smooth=smooth))
    return path
