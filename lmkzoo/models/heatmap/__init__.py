from lmkzoo.models.heatmap.heatmap_network import HeatmapNetwork, heatmap_stride, paper_backbone_args, parse_strategy

__all__ = ["HeatmapNetwork", "heatmap_stride", "paper_backbone_args", "parse_strategy"]
