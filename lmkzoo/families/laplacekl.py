"""The LaplaceKL family (Robinson et al. 2019): zoo ``builder`` → RCN generator + Laplace codec + loss (+ discriminator).

zoo.yaml ``recipe.loss.name`` picks the supervised loss: ``laplace_kl`` (LaplaceKL), ``gaussian_kl`` or
``softargmax_l2`` (the soft-argmax baseline); ``recipe.adversarial`` (LaplaceKL+D) holds the weight λ and
the discriminator's arguments for :func:`lmkzoo.training.adversarial.train_adversarial`.
"""

from __future__ import annotations

from lmkzoo import schemes
from lmkzoo.errors import InvalidArgumentError
from lmkzoo.families.base import Family, register_family

__all__ = ["LaplaceKLFamily", "LOSSES"]

#: recipe loss name → loss class name in lmkzoo.losses
LOSSES = {"laplace_kl": "LaplaceKL", "gaussian_kl": "GaussianKL", "softargmax_l2": "SoftArgmaxL2"}

_DISCRIMINATOR_KEYS = {"filters", "noise_stddev", "negative_slope"}
_ADVERSARIAL_KEYS = {"weight", "generator_objective", "discriminator"}


@register_family
class LaplaceKLFamily(Family):
    name = "laplacekl"
    builder_keys = {
        "width": 1.0,  # channel factor: 1/16, 1/8, 1/4, 1/2, 1 (Table 3)
        "filters": 64,
        "dropout": 0.2,
        "negative_slope": 0.2,
        "beta": 1.0,  # softmax temperature of Eq. 2
        "target_scale": 1.0,  # b of the target Laplace(s, b), heatmap pixels
        "covariance_scale": 1.0,  # calibration of the decoded Σ (fitted on a validation set when weights ship)
    }
    augment_preset = "laplacekl"
    trainers = ("supervised", "adversarial")

    def trainer_for(self, spec, unlabeled=None) -> str:
        # a recipe with an ``adversarial`` section (LaplaceKL+D) always trains against its discriminator
        return "adversarial" if spec.recipe.get("adversarial") else "supervised"

    def build_codec(self, spec, **overrides):
        from lmkzoo.codecs import LaplaceCodec

        args = self.builder_args(spec, **overrides)
        k = schemes.get(spec.scheme).num_points
        return LaplaceCodec(k, spec.input_size, beta=args["beta"], target_scale=args["target_scale"],
                            covariance_scale=args["covariance_scale"], name="laplace_codec")

    def build_network(self, spec, **overrides):
        from lmkzoo.models.laplacekl import RCN

        args = self.builder_args(spec, **overrides)
        return RCN(self.build_codec(spec, **overrides), width=args["width"], filters=args["filters"],
                   dropout=args["dropout"], negative_slope=args["negative_slope"], name=spec.arch)

    def default_loss(self, spec, network):
        from lmkzoo import losses

        cfg = dict(spec.recipe.get("loss") or {"name": "laplace_kl"})
        name = cfg.pop("name", "laplace_kl")
        if name not in LOSSES:
            raise InvalidArgumentError(f"{spec.name}: unknown loss {name!r} for the laplacekl family; allowed: {sorted(LOSSES)}")
        cfg.setdefault("beta", network.codec.beta)
        cfg.setdefault("target_scale", network.codec.target_scale)
        return getattr(losses, LOSSES[name])(**cfg)

    def adversarial_args(self, spec) -> dict | None:
        """The recipe's adversarial settings (``None`` when the model trains without a discriminator)."""
        adv = spec.recipe.get("adversarial")
        if not adv:
            return None
        unknown = set(adv) - _ADVERSARIAL_KEYS
        if unknown:
            raise InvalidArgumentError(f"{spec.name}: unknown recipe.adversarial keys {sorted(unknown)}; "
                                       f"allowed: {sorted(_ADVERSARIAL_KEYS)}")
        disc = dict(adv.get("discriminator") or {})
        unknown = set(disc) - _DISCRIMINATOR_KEYS
        if unknown:
            raise InvalidArgumentError(f"{spec.name}: unknown discriminator keys {sorted(unknown)}; allowed: {sorted(_DISCRIMINATOR_KEYS)}")
        return {"weight": float(adv.get("weight", 1e-3)), "generator_objective": adv.get("generator_objective", "minimax"),
                "discriminator": disc}

    def build_discriminator(self, spec, network, **overrides):
        """The PatchGAN for ``network`` (image + K heatmaps), with the recipe's arguments."""
        from lmkzoo.models.laplacekl import PatchDiscriminator

        adv = self.adversarial_args(spec) or {"discriminator": {}}
        w, h = network.input_size
        return PatchDiscriminator((h, w, 3 + network.num_points), **{**adv["discriminator"], **overrides},
                                  name=f"{spec.arch}_discriminator")
