"""The PIPNet family: zoo ``builder`` arguments → :class:`~lmkzoo.models.pipnet.PIPNet` + codec + loss."""

from __future__ import annotations

import numpy as np

from lmkzoo.codecs.pipnet_codec import PIPNetCodec, packaged_meanface
from lmkzoo.errors import InvalidArgumentError
from lmkzoo.tasks.families import Family, register_family

__all__ = ["PIPNetFamily", "DEFAULT_MEANFACES"]

#: PIPNet's own mean faces per scheme (used when a spec names none and no training set is at hand)
DEFAULT_MEANFACES = {
    "wflw98": "pipnet_wflw",
    "ibug68": "pipnet_300w",
    "cofw29": "pipnet_cofw",
    "aflw19": "pipnet_aflw",
    "jd106": "pipnet_lapa",
}


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

    def resolve_meanface(self, spec, meanface):
        if meanface is None:
            if spec.scheme not in DEFAULT_MEANFACES:
                raise InvalidArgumentError(
                    f"{spec.name}: scheme {spec.scheme!r} has no packaged PIPNet mean face; give builder.meanface "
                    "(or train, which computes it from the training set)"
                )
            meanface = DEFAULT_MEANFACES[spec.scheme]
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
