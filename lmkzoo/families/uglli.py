"""The UGLLI family: zoo ``builder`` arguments → :class:`~lmkzoo.models.uglli.UGLLI` + codec + GLL loss."""

from __future__ import annotations

from lmkzoo.errors import InvalidArgumentError
from lmkzoo.families.base import Family, register_family

__all__ = ["UGLLIFamily"]


@register_family
class UGLLIFamily(Family):
    name = "uglli"
    builder_keys = {
        "num_stacks": 8,  # hourglasses (DU-Net layer_num 8, every one supervised)
        "channels": 128,
        "growth_rate": 32,
        "neck_size": 4,
        "num_blocks": 4,
        "order": 1,
        "mean_estimator": "relu",  # relu | softmax | tau_softmax | direct (Table 3 ablations)
        "temperature": 0.02,
        "covariance_scale": 1.0,  # calibration of the decoded Σ (fitted on a validation set when weights ship)
    }
    augment_preset = "uglli"

    def build_codec(self, spec, **overrides):
        from lmkzoo import schemes
        from lmkzoo.codecs.uglli_codec import UGLLICodec

        args = self.builder_args(spec, **overrides)
        return UGLLICodec(schemes.get(spec.scheme).num_points, spec.input_size, mean_estimator=args["mean_estimator"],
                          temperature=args["temperature"], covariance_scale=args["covariance_scale"], name="uglli_codec")

    def build_network(self, spec, **overrides):
        from lmkzoo.models.uglli import UGLLI

        args = self.builder_args(spec, **overrides)
        codec = self.build_codec(spec, **overrides)
        arch = {k: args[k] for k in ("num_stacks", "channels", "growth_rate", "neck_size", "num_blocks", "order")}
        return UGLLI(codec, name=spec.arch, **arch)

    def default_loss(self, spec, network):
        from lmkzoo.losses import GaussianLogLikelihood

        loss = dict(spec.recipe.get("loss") or {})
        name = loss.pop("name", "gll")
        if name != "gll":
            raise InvalidArgumentError(f"{spec.name}: recipe loss must be 'gll' (options: supervision, criterion, "
                                       f"stack_weights, epsilon); got {name!r}")
        return GaussianLogLikelihood(mean_estimator=network.codec.mean_estimator,
                                     temperature=network.codec.temperature, **loss)
