"""Backbones by name: ``resnet18/34/50/101``, ``mobilenetv2``, ``mobilenetv3_large``."""

from __future__ import annotations

from lmkzoo.errors import InvalidArgumentError
from lmkzoo.models.backbones.backbone import Backbone
from lmkzoo.models.backbones.mobilenet_v2_backbone import MobileNetV2Backbone
from lmkzoo.models.backbones.mobilenet_v3_backbone import MobileNetV3LargeBackbone
from lmkzoo.models.backbones.resnet_backbone import ResNetBackbone

__all__ = ["Backbone", "ResNetBackbone", "MobileNetV2Backbone", "MobileNetV3LargeBackbone", "get_backbone", "BACKBONES"]

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
