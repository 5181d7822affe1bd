"""The geographic prior P(y|x) = sigmoid(T e(x)) and its fusion with image predictions."""

from geocsp.prior.fusion import fuse
from geocsp.prior.prior import GeoPrior

__all__ = ["GeoPrior", "fuse"]
