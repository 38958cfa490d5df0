"""The LOTR family (Watchareeruetai et al. 2021): zoo ``builder`` arguments → :class:`~lmkzoo.models.lotr.LOTRNetwork`
(or the CNN + FFN baseline, ``head: ffn``) + :class:`~lmkzoo.codecs.RegressionCodec` + :class:`CoordinateLoss`.

zoo.yaml ``recipe.loss`` picks the point loss of Eq. 5: ``{name: smooth_wing, t: 0.01, w: 10, epsilon: 2}``
(the paper's), ``wing``, ``l1``, ``l2`` or ``smooth_l1`` (§4.7), plus ``units`` (``pixels``, the default:
differences in crop pixels, where Wing's ``w`` and ``ε`` are defined; or ``normalized``) and
``point_reduction`` (``sum``, Eq. 5, or ``mean``). A ``null`` argument removes one that a tag inherits from
its arch's recipe (``loss: {name: l1, t: null, w: null, epsilon: null}``).
"""

from __future__ import annotations

from lmkzoo.errors import InvalidArgumentError
from lmkzoo.families.base import Family, register_family

__all__ = ["LOTRFamily", "LOTR_BACKBONES", "HEADS"]

#: backbones of the paper (any stride-32 lmkzoo backbone works)
LOTR_BACKBONES = ("mobilenetv2", "resnet50", "resnet18", "resnet34", "resnet101", "mobilenetv3_large")
#: ``transformer``: LOTR; ``ffn``: the CNN + FFN baseline of §4.6
HEADS = ("transformer", "ffn")
_TRANSFORMER_ONLY = ("upsample_filters", "dim", "num_heads", "ffn_dim", "num_encoder_layers", "num_decoder_layers",
                     "query_stddev", "pos_stddev", "query_pos", "head_dropout")


@register_family
class LOTRFamily(Family):
    name = "lotr"
    builder_keys = {
        "backbone": "mobilenetv2",
        # for mobilenetv2 the family keeps the final 1x1 conv at 1280·width channels (lotr_backbone_args)
        "backbone_args": {},
        "head": "transformer",
        "reduce_channels": 64,
        "upsample_filters": [],
        # not given by the paper: chosen so that the parameter counts match Table 3 (lotr_network docstring)
        "dim": 64,
        "num_heads": 4,
        "ffn_dim": 128,
        "num_encoder_layers": 2,
        "num_decoder_layers": 2,
        "dropout": 0.1,
        "head_units": [512, 512],
        "query_stddev": 1e-4,
        "pos_stddev": 1.0,
        "query_pos": False,
        # the dropout before the head alone (None: the same as "dropout", as the paper)
        "head_dropout": None,
    }
    augment_preset = "lotr"

    def build_codec(self, spec, **overrides):
        from lmkzoo import schemes
        from lmkzoo.codecs import RegressionCodec

        return RegressionCodec(schemes.get(spec.scheme).num_points, spec.input_size, name="regression_codec")

    def build_network(self, spec, **overrides):
        from lmkzoo.models.lotr import CNNFFNNetwork, LOTRNetwork

        args = self.builder_args(spec, **overrides)
        if args["backbone"] not in LOTR_BACKBONES:
            raise InvalidArgumentError(
                f"{spec.name}: LOTR backbone must be one of {list(LOTR_BACKBONES)}; got {args['backbone']!r}")
        if args["head"] not in HEADS:
            raise InvalidArgumentError(f"{spec.name}: head must be one of {list(HEADS)}; got {args['head']!r}")
        codec = self.build_codec(spec, **overrides)
        common = dict(backbone=args["backbone"], backbone_args=args["backbone_args"], codec=codec,
                      reduce_channels=args["reduce_channels"], head_units=args["head_units"], name=spec.arch)
        if args["head"] == "ffn":
            return CNNFFNNetwork.from_preset_args(**common)
        return LOTRNetwork.from_preset_args(**common, **{k: args[k] for k in _TRANSFORMER_ONLY}, dropout=args["dropout"])

    def default_loss(self, spec, network):
        from lmkzoo.losses.coordinate_loss import POINT_LOSSES, CoordinateLoss

        # a null argument drops one inherited from the arch's recipe (a tag switching smooth-Wing to L1 sets t: null)
        loss = {k: v for k, v in dict(spec.recipe.get("loss") or {}).items() if v is not None}
        name = loss.pop("name", "smooth_wing")
        if name not in POINT_LOSSES:
            raise InvalidArgumentError(
                f"{spec.name}: the LOTR family's loss is one of {sorted(POINT_LOSSES)}; got {name!r}")
        units = loss.pop("units", "pixels")
        if units not in ("pixels", "normalized"):
            raise InvalidArgumentError(f"{spec.name}: recipe.loss.units must be 'pixels' or 'normalized'; got {units!r}")
        scale = network.codec.input_size if units == "pixels" else (1.0, 1.0)
        return CoordinateLoss(point_loss=name, scale=scale, **loss)
