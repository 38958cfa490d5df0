"""The heatmap family (Earp et al. 2021): zoo ``builder`` arguments → :class:`~lmkzoo.models.heatmap.HeatmapNetwork`
+ :class:`~lmkzoo.codecs.HeatmapCodec` + :class:`~lmkzoo.losses.HeatmapLoss`."""

from __future__ import annotations

from lmkzoo.errors import InvalidArgumentError
from lmkzoo.families.base import Family, register_family

__all__ = ["HeatmapFamily", "HEATMAP_BACKBONES"]

#: backbones of the paper (any stride-32 lmkzoo backbone works; these are the ones it reports)
HEATMAP_BACKBONES = ("mobilenetv2", "resnet18", "resnet50", "resnet34", "resnet101", "mobilenetv3_large")


@register_family
class HeatmapFamily(Family):
    name = "heatmap"
    builder_keys = {
        "backbone": "mobilenetv2",
        # for mobilenetv2 the family keeps the final 1x1 conv at 1280·width channels (paper_backbone_args)
        "backbone_args": {},
        "strategy": "DDDD",
        "filters": 256,
        "sigma": 2.0,  # Gaussian target sigma in heatmap pixels
        "refine": "dark",  # decode: dark | quarter | none
    }
    augment_preset = "earp"

    def build_codec(self, spec, **overrides):
        from lmkzoo import schemes
        from lmkzoo.codecs import HeatmapCodec
        from lmkzoo.models.heatmap import heatmap_stride

        args = self.builder_args(spec, **overrides)
        return HeatmapCodec(
            schemes.get(spec.scheme).num_points, spec.input_size, stride=heatmap_stride(args["strategy"]),
            sigma=args["sigma"], refine=args["refine"], name="heatmap_codec",
        )

    def build_network(self, spec, **overrides):
        from lmkzoo.models.heatmap import HeatmapNetwork

        args = self.builder_args(spec, **overrides)
        if args["backbone"] not in HEATMAP_BACKBONES:
            raise InvalidArgumentError(
                f"{spec.name}: heatmap backbone must be one of {list(HEATMAP_BACKBONES)}; got {args['backbone']!r}"
            )
        codec = self.build_codec(spec, **overrides)
        return HeatmapNetwork.from_preset_args(
            backbone=args["backbone"], backbone_args=args["backbone_args"], codec=codec, strategy=args["strategy"],
            filters=args["filters"], name=spec.arch,
        )

    def default_loss(self, spec, network):
        from lmkzoo.losses import HeatmapLoss

        loss = dict(spec.recipe.get("loss") or {})
        name = loss.pop("name", "heatmap_mse")
        if name != "heatmap_mse":
            raise InvalidArgumentError(f"{spec.name}: the heatmap family's loss is 'heatmap_mse'; got {name!r}")
        return HeatmapLoss(**loss)
