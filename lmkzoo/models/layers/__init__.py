from lmkzoo.models.layers.image_normalization import ImageNormalization
from lmkzoo.models.layers.pixel_shuffle import PixelShuffle
from lmkzoo.models.layers.soft_argmax import SoftArgmax2D
from lmkzoo.models.layers.subpixel_conv_transpose import SubPixelConv2DTranspose

__all__ = ["ImageNormalization", "PixelShuffle", "SoftArgmax2D", "SubPixelConv2DTranspose"]
