"""Models without a crop: ``uncropped(TERM)`` is the term itself there, and the model says so."""

from __future__ import annotations

import pytest

from losslab.losses import LossEquivalenceWarning
from losslab.models import create_model


@pytest.mark.parametrize("preset", ["maskrcnn_tiny", "masknet", "unet_tiny"])
def test_uncropped_is_the_identity_without_a_crop_and_says_so(preset):
    with pytest.warns(LossEquivalenceWarning, match="no crop"):
        create_model(preset, mask_loss="bce + 0.5*uncropped(mse)")


def test_yolact_crops_so_uncropped_is_not_the_identity():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", LossEquivalenceWarning)
        create_model("yolact_tiny", mask_loss="bce + 0.5*uncropped(mse)", num_classes=1)
