"""Backbones by name: ``resnet18/34/50/101``, ``mobilenetv2``, ``mobilenetv3_large``."""

from __future__ import annotations

from lmkzoo.errors import InvalidArgumentError
from lmkzoo.models.backbones.backbone import Backbone, make_divisible
from lmkzoo.models.backbones.mobilenet_v2_backbone import MobileNetV2Backbone
from lmkzoo.models.backbones.mobilenet_v3_backbone import MobileNetV3LargeBackbone
from lmkzoo.models.backbones.resnet_backbone import ResNetBackbone

__all__ = ["Backbone", "ResNetBackbone", "MobileNetV2Backbone", "MobileNetV3LargeBackbone", "get_backbone", "BACKBONES",
           "scaled_last_conv_args"]

BACKBONES = {
    "resnet18": (ResNetBackbone, {"depth": 18}),
    "resnet34": (ResNetBackbone, {"depth": 34}),
    "resnet50": (ResNetBackbone, {"depth": 50}),
    "resnet101": (ResNetBackbone, {"depth": 101}),
    "mobilenetv2": (MobileNetV2Backbone, {}),
    "mobilenetv3_large": (MobileNetV3LargeBackbone, {}),
}


def get_backbone(name: str, **kwargs) -> Backbone:
    """Build the backbone called ``name`` (keyword arguments go to its constructor)."""
    if name not in BACKBONES:
        raise InvalidArgumentError(f"unknown backbone {name!r}; available: {sorted(BACKBONES)}")
    cls, defaults = BACKBONES[name]
    return cls(**{**defaults, **kwargs})


def scaled_last_conv_args(backbone: str, backbone_args=None) -> dict:
    """Backbone arguments whose MobileNetV2 keeps its final 1x1 conv at ``make_divisible(1280 · width)``
    channels (torchvision keeps 1280 for every width <= 1) unless the caller sets ``include_last_conv`` /
    ``last_conv_channels``: the features Earp et al.'s heatmap models and LOTR (which shares their
    pre-processing; "6 × 6 × 1280", §4.3) read. Other backbones' arguments are returned unchanged."""
    args = dict(backbone_args or {})
    if backbone == "mobilenetv2":
        width = float(args.get("width_multiplier", 1.0))
        args.setdefault("include_last_conv", True)
        if args["include_last_conv"] and args.get("last_conv_channels") is None:
            args["last_conv_channels"] = make_divisible(1280 * width)
    return args
