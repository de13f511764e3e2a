"""Imports every loss module so that each registers itself."""

from losslab.losses import (
    boundary,  # noqa: F401
    box,  # noqa: F401
    classification,  # noqa: F401
    distance,  # noqa: F401
    generalized,  # noqa: F401
    pixel,  # noqa: F401
    region,  # noqa: F401
    regression,  # noqa: F401
    structural,  # noqa: F401
    topology,  # noqa: F401
)
