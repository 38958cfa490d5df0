"""The PIPNet family: zoo ``builder`` arguments → :class:`~lmkzoo.models.pipnet.PIPNet` + codec + loss."""

from __future__ import annotations

import numpy as np

from lmkzoo.assets import SCHEME_MEANFACES, packaged_meanface
from lmkzoo.codecs.pipnet_codec import PIPNetCodec
from lmkzoo.errors import InvalidArgumentError
from lmkzoo.families.base import Family, register_family

__all__ = ["PIPNetFamily"]



@register_family
class PIPNetFamily(Family):
    name = "pipnet"
    builder_keys = {
        "backbone": "resnet18",
        "backbone_args": {},
        "net_stride": 32,
        "num_neighbors": 10,
        "extra_channels": 512,
        # a packaged mean face name, a (K, 2) list, or None (the scheme's PIPNet mean face)
        "meanface": None,
        # self-training with curriculum: the extra pooled score maps (training only; no extra weights)
        "stc_heads": False,
    }
    augment_preset = "pipnet"
    trainers = ("supervised", "self_training")

    def trainer_for(self, spec, unlabeled=None) -> str:
        # a recipe with an ``stc`` section self-trains when given unlabeled faces (else it trains supervised)
        return "self_training" if spec.recipe.get("stc") and unlabeled is not None else "supervised"

    def fit_overrides(self, spec, overrides, *, train_source=None, init_builder=None) -> dict:
        """The mean face a run trains with (its neighbour offsets are relative to it): the caller's, else that of
        the weights it starts from, else the training set's (docs/reference_facts.md §A4)."""
        overrides = dict(overrides)
        if init_builder and "meanface" in init_builder:
            overrides.setdefault("meanface", init_builder["meanface"])
        if "meanface" not in overrides and train_source is not None:
            from lmkzoo.data.pipeline import compute_meanface

            mf = compute_meanface(train_source, crop=spec.crop, input_size=spec.input_size, scheme=spec.scheme)
            overrides["meanface"] = mf.round(6).tolist()
        return overrides

    def resolve_meanface(self, spec, meanface):
        if meanface is None:
            if spec.scheme not in SCHEME_MEANFACES:
                raise InvalidArgumentError(
                    f"{spec.name}: scheme {spec.scheme!r} has no packaged PIPNet mean face; give builder.meanface "
                    "(or train, which computes it from the training set)"
                )
            meanface = SCHEME_MEANFACES[spec.scheme]
        mf = packaged_meanface(meanface) if isinstance(meanface, str) else np.asarray(meanface, dtype=np.float64)
        from lmkzoo import schemes

        k = schemes.get(spec.scheme).num_points
        if mf.shape != (k, 2):
            raise InvalidArgumentError(f"{spec.name}: mean face has shape {mf.shape}; scheme {spec.scheme!r} needs ({k}, 2)")
        return mf

    def build_codec(self, spec, **overrides):
        args = self.builder_args(spec, **overrides)
        mf = self.resolve_meanface(spec, args["meanface"])
        return PIPNetCodec.from_meanface(mf, args["num_neighbors"], spec.input_size, args["net_stride"], name="pipnet_codec")

    def build_network(self, spec, **overrides):
        from lmkzoo.models.pipnet import PIPNet

        args = self.builder_args(spec, **overrides)
        codec = self.build_codec(spec, **overrides)
        return PIPNet.from_preset_args(
            backbone=args["backbone"], backbone_args=args["backbone_args"], codec=codec,
            extra_channels=args["extra_channels"], stc_heads=bool(args["stc_heads"]), name=spec.arch,
        )

    def default_loss(self, spec, network):
        from lmkzoo.losses import PIPLoss, STCLoss

        loss = dict(spec.recipe.get("loss") or {})
        loss.pop("name", None)
        if getattr(network, "stc_heads", False):  # typed (self-training) targets: the masked GSSL loss
            return STCLoss(net_stride=network.codec.net_stride, **loss)
        return PIPLoss(net_stride=network.codec.net_stride, **loss)
