from lmkzoo.models.layers.image_normalization import ImageNormalization
from lmkzoo.models.layers.pixel_shuffle import PixelShuffle

__all__ = ["ImageNormalization", "PixelShuffle"]
