"""Imports every loss module so that each registers itself."""

from losslab.losses import pixel  # noqa: F401
