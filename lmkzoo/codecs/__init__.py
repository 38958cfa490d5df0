"""Per-family codecs: ``encode`` (tf, for tf.data) and decode (keras.ops, inside every serving graph)."""

from lmkzoo.codecs.base import LandmarkCodec
from lmkzoo.codecs.heatmap_codec import HeatmapCodec
from lmkzoo.codecs.pipnet_codec import PIPNetCodec, neighbor_tables, packaged_meanface, read_meanface

__all__ = ["HeatmapCodec", "LandmarkCodec", "PIPNetCodec", "neighbor_tables", "packaged_meanface", "read_meanface"]
