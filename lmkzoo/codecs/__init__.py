"""Per-family codecs: ``encode`` (tf, for tf.data) and decode (keras.ops, inside every serving graph)."""

from lmkzoo.codecs.base import LandmarkCodec
from lmkzoo.codecs.heatmap_codec import HeatmapCodec
from lmkzoo.codecs.laplacekl_codec import LaplaceCodec
from lmkzoo.codecs.pipnet_codec import PIPNetCodec, neighbor_tables, packaged_meanface, read_meanface
from lmkzoo.codecs.regression_codec import RegressionCodec
from lmkzoo.codecs.uglli_codec import UGLLICodec

__all__ = ["HeatmapCodec", "LandmarkCodec", "LaplaceCodec", "PIPNetCodec", "RegressionCodec", "UGLLICodec",
           "neighbor_tables", "packaged_meanface", "read_meanface"]
