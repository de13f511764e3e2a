"""losslab: find the best loss function for a segmentation model by measurement."""

__version__ = "0.1.0"
