"""Augmentation presets as data: each paper's recipe, one dict each (probabilities and ranges).

Keys (all optional):
    flip: {p}                                   horizontal flip with the scheme permutation
    rotate: {p, max_deg}                        rotation about the crop centre, U(-max, max)
    scale: {p, range: [lo, hi]}                 zoom about the crop centre
    translate: {p, max_frac}                    shift by U(-max, max) x crop size
    erase: {p, max_frac, fill: color|noise}     occlusion / random erasing
    blur: {p, max_sigma_frac}                   Gaussian blur, sigma U(0, max) x crop width
    grayscale: {p}
    color: {p, brightness, contrast, saturation}
    pca_lighting: {sigma}
    clip_points: bool                           clip targets into the crop (PIPNet clips after translation)
"""

from __future__ import annotations

import copy

from lmkzoo.errors import InvalidArgumentError

__all__ = ["PRESETS", "get_preset", "AUGMENT_KEYS"]

AUGMENT_KEYS = {"flip", "rotate", "scale", "translate", "erase", "blur", "grayscale", "color", "pca_lighting", "clip_points"}

PRESETS = {
    "none": {},
    # PIPNet (paper §4.1.2, code lib/data_utils.py): translation ±30 px of 256, occlusion up to 0.4 x 0.4,
    # flip, rotation ±30°, blur radius up to 5 px (p 0.3), grayscale p 0.2; targets clipped to the crop
    "pipnet": {
        "translate": {"p": 0.5, "max_frac": 30 / 256},
        "erase": {"p": 0.5, "max_frac": 0.4, "fill": "color"},
        "flip": {"p": 0.5},
        "rotate": {"p": 0.5, "max_deg": 30.0},
        "blur": {"p": 0.3, "max_sigma_frac": 5 / 256},
        "grayscale": {"p": 0.2},
        "clip_points": True,
    },
    # PIPNet's recipe plus the colour and scale jitter that LFW needs (its inpainted mark residue sits at
    # landmark positions: shared/data/lfw_faces/SOURCE.md asks for strong colour and blur augmentation)
    "pipnet_strong": {
        "translate": {"p": 0.6, "max_frac": 0.1},
        "scale": {"p": 0.6, "range": [0.85, 1.15]},
        "erase": {"p": 0.5, "max_frac": 0.4, "fill": "color"},
        "flip": {"p": 0.5},
        "rotate": {"p": 0.6, "max_deg": 30.0},
        "blur": {"p": 0.4, "max_sigma_frac": 5 / 256},
        "grayscale": {"p": 0.2},
        "color": {"p": 0.8, "brightness": 0.4, "contrast": 0.4, "saturation": 0.4},
        "pca_lighting": {"sigma": 0.1},
        "clip_points": True,
    },
    # Earp et al. 2021 (§3.3, §5.1), applied after the 5-point alignment: AlexNet PCA lighting sigma 0.05,
    # GluonCV colour jitter 0.4 (brightness, contrast, saturation), horizontal flip, random erasing
    # (Huang et al. 2020's information dropping; the paper gives no sizes: up to 0.4 of each side, noise
    # fill as in Zhong et al.), rotation up to ±15°. No scale and no shift: the paper measured both as
    # harmful (~1 AUC point each). Probabilities are not stated in the paper; 0.5 each.
    "earp": {
        "flip": {"p": 0.5},
        "rotate": {"p": 0.5, "max_deg": 15.0},
        "color": {"p": 1.0, "brightness": 0.4, "contrast": 0.4, "saturation": 0.4},
        "pca_lighting": {"sigma": 0.05},
        "erase": {"p": 0.5, "max_frac": 0.4, "fill": "noise"},
    },
}


def get_preset(name_or_dict) -> dict:
    """A preset by name, or a dict checked against :data:`AUGMENT_KEYS`."""
    if name_or_dict is None:
        return {}
    if isinstance(name_or_dict, str):
        if name_or_dict not in PRESETS:
            raise InvalidArgumentError(f"unknown augmentation preset {name_or_dict!r}; available: {sorted(PRESETS)}")
        return copy.deepcopy(PRESETS[name_or_dict])
    unknown = set(name_or_dict) - AUGMENT_KEYS
    if unknown:
        raise InvalidArgumentError(f"unknown augmentation keys {sorted(unknown)}; allowed: {sorted(AUGMENT_KEYS)}")
    return copy.deepcopy(dict(name_or_dict))
