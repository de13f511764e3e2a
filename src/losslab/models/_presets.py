"""Imports every model family so that its presets register themselves."""

from losslab.models import depth, masknet, unet  # noqa: F401
from losslab.models.maskrcnn import model as maskrcnn  # noqa: F401
from losslab.models.yolact import presets as yolact_presets  # noqa: F401
