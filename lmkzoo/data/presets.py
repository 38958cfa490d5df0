"""Augmentation presets as data: each paper's recipe, one dict each (probabilities and ranges).

Keys (all optional) and their fields:
    flip: {p}                                   horizontal flip with the scheme permutation
    rotate: {p, max_deg, dist}                  rotation about the crop centre in [-max, max]; dist uniform | normal
                                                (normal: std max/2, clipped at max)
    scale: {p, range: [lo, hi], dist, box}      zoom about the crop centre; box: true reads the factor as a factor on
                                                the crop box (content zoom = 1 / factor)
    translate: {p, max_frac}                    shift by U(-max, max) x crop size
    keep_inside: {margin}                       shrink the content so every visible point stays inside the crop
    erase: {p, mode, max_frac, min_frac, area, aspect, fill}
                                                occlusion / random erasing (transforms.random_erasing); mode sides |
                                                area | centered, fill color | noise | zero
    blur: {p, max_sigma_frac}                   Gaussian blur, sigma U(0, max) x crop width
    grayscale: {p}
    color: {p, brightness, contrast, saturation}
    channel_scale: {p, range: [lo, hi]}         each RGB channel times its own U(lo, hi)
    pca_lighting: {sigma, p}                    AlexNet PCA lighting noise
    clip_points: bool                           clip targets into the crop (PIPNet clips after translation)

Geometry (flip, rotate, scale, translate, keep_inside) is composed into the single crop affine; the photometric
ops then run in this order: color, channel_scale, pca_lighting, erase, blur, grayscale.
"""

from __future__ import annotations

import copy

from lmkzoo.errors import InvalidArgumentError

__all__ = ["PRESETS", "get_preset", "AUGMENT_KEYS", "AUGMENT_FIELDS"]

AUGMENT_FIELDS = {
    "flip": {"p"},
    "rotate": {"p", "max_deg", "dist"},
    "scale": {"p", "range", "dist", "box"},
    "translate": {"p", "max_frac"},
    "keep_inside": {"margin"},
    "erase": {"p", "mode", "max_frac", "min_frac", "area", "aspect", "fill"},
    "blur": {"p", "max_sigma_frac"},
    "grayscale": {"p"},
    "color": {"p", "brightness", "contrast", "saturation"},
    "channel_scale": {"p", "range"},
    "pca_lighting": {"sigma", "p"},
}
AUGMENT_KEYS = set(AUGMENT_FIELDS) | {"clip_points"}
_CHOICES = {("rotate", "dist"): ("uniform", "normal"), ("scale", "dist"): ("uniform", "normal"),
            ("erase", "mode"): ("sides", "area", "centered"), ("erase", "fill"): ("color", "noise", "zero")}

# Earp et al. 2021 (arXiv 2103.03059 §3-4) on 5-point aligned crops: AlexNet PCA colour noise sigma 0.05 and GluonCV
# colour jitter 0.4 (brightness, contrast, saturation) on every image; the training set extended by horizontal
# flips (here: flip with p 0.5); random erasing as in Huang et al. 2020 (Zhong et al.'s defaults: p 0.5, area
# 2-40 %, aspect 0.3-3.3, random values); random rotation up to 15 degrees, the only geometric jitter that helped
# (random scaling and repositioning cost about 1 AUC point, so they are off).
_EARP = {
    "pca_lighting": {"sigma": 0.05, "p": 1.0},
    "color": {"p": 1.0, "brightness": 0.4, "contrast": 0.4, "saturation": 0.4},
    "flip": {"p": 0.5},
    "erase": {"p": 0.5, "mode": "area", "area": [0.02, 0.4], "aspect": [0.3, 1 / 0.3], "fill": "noise"},
    "rotate": {"p": 1.0, "max_deg": 15.0, "dist": "uniform"},
}

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
    "earp": _EARP,
    # LOTR (arXiv 2109.10057 §4.1): "the same steps described by Earp et al. (2021)"
    "lotr": copy.deepcopy(_EARP),
    # LaplaceKL (Robinson et al. 2019 §4): "no data augmentation nor any other training tricks"
    "laplacekl": {},
    # UGLLI (Kumar et al. 2019; merlresearch/LUVLi data/face_bbx.py defaults): box scale 1 + N(0, 0.125) clipped
    # to ±0.25, rotation N(0, 15°) clipped to ±30° on every image, each RGB channel times U(0.6, 1.4), points kept
    # inside the crop (keep_pts_inside); no flip (use_flipping is off in every LUVLi loader)
    "uglli": {
        "scale": {"p": 1.0, "range": [0.75, 1.25], "dist": "normal", "box": True},
        "rotate": {"p": 1.0, "max_deg": 30.0, "dist": "normal"},
        "channel_scale": {"p": 1.0, "range": [0.6, 1.4]},
        "keep_inside": {"margin": 0.0},
    },
    # UGLLI split 2 / LUVLi --bulat_aug (Bulat & Tzimiropoulos 2017): scale ±0.2, rotation ±50°, plus a black
    # occlusion patch centred anywhere with half sides up to half the crop
    "uglli_bulat": {
        "scale": {"p": 1.0, "range": [0.8, 1.2], "dist": "normal", "box": True},
        "rotate": {"p": 1.0, "max_deg": 50.0, "dist": "normal"},
        "channel_scale": {"p": 1.0, "range": [0.6, 1.4]},
        "erase": {"p": 1.0, "mode": "centered", "max_frac": 1.0, "fill": "zero"},
        "keep_inside": {"margin": 0.0},
    },
}


def get_preset(name_or_dict) -> dict:
    """A preset by name, or a dict checked against :data:`AUGMENT_FIELDS` (unknown keys and fields are errors)."""
    if name_or_dict is None:
        return {}
    if isinstance(name_or_dict, str):
        if name_or_dict not in PRESETS:
            raise InvalidArgumentError(f"unknown augmentation preset {name_or_dict!r}; available: {sorted(PRESETS)}")
        return copy.deepcopy(PRESETS[name_or_dict])
    if not isinstance(name_or_dict, dict):
        raise InvalidArgumentError(f"augment must be a preset name or a dict; got {type(name_or_dict).__name__}")
    unknown = set(name_or_dict) - AUGMENT_KEYS
    if unknown:
        raise InvalidArgumentError(f"unknown augmentation keys {sorted(unknown)}; allowed: {sorted(AUGMENT_KEYS)}")
    for key, fields in AUGMENT_FIELDS.items():
        if key not in name_or_dict:
            continue
        value = name_or_dict[key]
        if not isinstance(value, dict):
            raise InvalidArgumentError(f"augmentation {key!r} must be a dict of {sorted(fields)}; got {value!r}")
        bad = set(value) - fields
        if bad:
            raise InvalidArgumentError(f"augmentation {key!r}: unknown fields {sorted(bad)}; allowed: {sorted(fields)}")
        for (k, f), allowed in _CHOICES.items():
            if k == key and f in value and value[f] not in allowed:
                raise InvalidArgumentError(f"augmentation {key}.{f} must be one of {list(allowed)}; got {value[f]!r}")
    return copy.deepcopy(dict(name_or_dict))
