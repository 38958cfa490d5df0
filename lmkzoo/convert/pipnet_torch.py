"""Convert an official PIPNet PyTorch checkpoint (a plain ``state_dict``) into lmkzoo's weights format.

Facts (docs/reference_facts.md §A1-A3): keys ``conv1``, ``bn1``, ``layer{1..4}.{b}.conv{1,2[,3]}``/``bn*``/
``downsample.{0,1}`` (ResNet), ``features.N...`` (MobileNetV2), optional ``layer5``/``bn5``/``layer6``/``bn6``
(stride 64/128) or ``deconv1``/``bn_deconv1`` (stride 16), and the heads ``cls_layer``, ``x_layer``,
``y_layer``, ``nb_x_layer``, ``nb_y_layer``. Kernels are transposed (torch ``[out, in, kh, kw]`` → Keras
``[kh, kw, in, out]``; depthwise ``[C, 1, kh, kw]`` → ``[kh, kw, C, 1]``; transposed convs ``[in, out, kh, kw]``
→ ``[kh, kw, out, in]``), BatchNorm keeps eps 1e-5 (set in the Keras layers). Every checkpoint key must be
used and every Keras weight filled, otherwise :class:`~lmkzoo.errors.CheckpointMismatchError` lists the first
mismatches. ``numeric_check`` runs the checkpoint through a functional PyTorch forward pass and compares raw
outputs and decoded landmarks with the converted Keras model.

torch is optional: ``pip install torch`` (any CPU build) to convert.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from lmkzoo.errors import CheckpointMismatchError, InvalidArgumentError

__all__ = ["load_state_dict", "inspect_state_dict", "convert_pipnet_state_dict", "convert_checkpoint", "torch_forward",
           "numeric_check"]

HEADS = ("cls_layer", "x_layer", "y_layer", "nb_x_layer", "nb_y_layer")


def _torch():
    try:
        import torch
    except ImportError:  # pragma: no cover - depends on the environment
        raise InvalidArgumentError("converting PyTorch checkpoints needs torch: pip install torch (a CPU build is enough)") from None
    return torch


def load_state_dict(path) -> dict[str, np.ndarray]:
    """Read a ``.pth`` state_dict (plain, or wrapped in ``{"state_dict": ...}``; a ``module.`` prefix is removed)."""
    torch = _torch()
    p = Path(os.fspath(path))
    if not p.exists():
        raise InvalidArgumentError(f"checkpoint not found: {p}")
    try:
        obj = torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many types for bad files
        raise CheckpointMismatchError(f"{p} is not a readable PyTorch checkpoint ({type(e).__name__}: {e})") from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise CheckpointMismatchError(f"{p} holds a {type(obj).__name__}, not a state_dict")
    out = {}
    for k, v in obj.items():
        key = k[7:] if k.startswith("module.") else k
        if hasattr(v, "numpy"):
            out[key] = v.detach().cpu().numpy()
    return out


def inspect_state_dict(sd: dict) -> dict:
    """Backbone, number of landmarks, neighbours and network stride read off the keys and shapes."""
    if "cls_layer.weight" not in sd:
        raise CheckpointMismatchError(f"not a PIPNet checkpoint: no 'cls_layer.weight' (first keys: {list(sd)[:5]})")
    for key in ("cls_layer.weight", "nb_x_layer.weight"):
        if key in sd and np.ndim(sd[key]) != 4:
            raise CheckpointMismatchError(f"{key} must be a 4-D convolution weight; the checkpoint has shape "
                                          f"{tuple(np.shape(sd[key]))}")
    k = sd["cls_layer.weight"].shape[0]
    nb = sd["nb_x_layer.weight"].shape[0] // k if "nb_x_layer.weight" in sd else 0
    if "features.0.0.weight" in sd:
        backbone = "mobilenetv2" if "features.18.0.weight" in sd else "mobilenetv3_large"
    elif "layer1.0.conv3.weight" in sd:
        n3 = len({key.split(".")[1] for key in sd if key.startswith("layer3.")})
        backbone = {6: "resnet50", 23: "resnet101"}.get(n3, f"resnet(bottleneck, {n3} blocks in layer3)")
    elif "layer1.0.conv1.weight" in sd:
        n3 = len({key.split(".")[1] for key in sd if key.startswith("layer3.")})
        backbone = {2: "resnet18", 6: "resnet34"}.get(n3, f"resnet(basic, {n3} blocks in layer3)")
    else:
        raise CheckpointMismatchError(f"unknown PIPNet backbone (first keys: {list(sd)[:5]})")
    stride = 16 if "deconv1.weight" in sd else 128 if "layer6.weight" in sd else 64 if "layer5.weight" in sd else 32
    return {"backbone": backbone, "num_points": int(k), "num_neighbors": int(nb), "net_stride": stride}


_UNDERSCORED = ("cls_layer", "x_layer", "y_layer", "nb_x_layer", "nb_y_layer", "bn_deconv1")


def _torch_name(keras_layer_name: str) -> str:
    """Keras layer name (torchvision module path with ``.`` → ``_``) → torch module path."""
    if keras_layer_name in _UNDERSCORED:
        return keras_layer_name
    return keras_layer_name.replace("_", ".")


_RANK = {"conv": 4, "depthwise": 4, "deconv": 4, "bn": 1, "bias": 1}


def _convert_array(kind: str, name: str, w: np.ndarray) -> np.ndarray:
    if np.ndim(w) != _RANK.get(kind, np.ndim(w)):
        return np.asarray(w)  # a wrong rank: reported with the other wrong shapes
    if kind == "conv":
        return w.transpose(2, 3, 1, 0)
    if kind == "depthwise":
        return w.transpose(2, 3, 0, 1)
    if kind == "deconv":
        return w.transpose(2, 3, 1, 0)
    return w


def _layer_params(network):
    """``[(torch_module_path, keras_variable, kind, suffix), ...]`` for every weight of a PIPNet."""
    import keras

    items = []

    def walk(layer):
        if isinstance(layer, keras.Model):  # the network and its nested backbone
            for sub in layer.layers:
                walk(sub)
            return
        if not layer.weights:
            return
        path = _torch_name(layer.name)
        if isinstance(layer, keras.layers.BatchNormalization):
            for var, suffix in zip(layer.weights, ("weight", "bias", "running_mean", "running_var")):
                items.append((path, var, "bn", suffix))
        elif isinstance(layer, keras.layers.DepthwiseConv2D):
            items.append((path, layer.weights[0], "depthwise", "weight"))
        elif isinstance(layer, keras.layers.Conv2DTranspose):
            items.append((path, layer.weights[0], "deconv", "weight"))
            if layer.use_bias:
                items.append((path, layer.weights[1], "bias", "bias"))
        elif isinstance(layer, keras.layers.Conv2D):
            items.append((path, layer.weights[0], "conv", "weight"))
            if layer.use_bias:
                items.append((path, layer.weights[1], "bias", "bias"))
        else:
            raise InvalidArgumentError(f"no PyTorch mapping for Keras layer {layer.name!r} ({type(layer).__name__})")

    walk(network)
    return items


def convert_pipnet_state_dict(sd: dict, network) -> list[str]:
    """Copy a PIPNet state_dict into a Keras PIPNet. Returns the ignored keys (``num_batches_tracked``).

    Raises :class:`CheckpointMismatchError` listing the first missing, unexpected or wrongly shaped keys.
    """
    params = _layer_params(network)
    used, missing, bad_shape = set(), [], []
    assign = []
    for path, var, kind, suffix in params:
        key = f"{path}.{suffix}"
        if key not in sd:
            missing.append(key)
            continue
        arr = _convert_array(kind, key, sd[key])
        if tuple(arr.shape) != tuple(var.shape):
            bad_shape.append(f"{key}: checkpoint {tuple(sd[key].shape)} -> {tuple(arr.shape)}, model {tuple(var.shape)}")
            continue
        used.add(key)
        assign.append((var, arr))
    ignored = [k for k in sd if k.endswith("num_batches_tracked")]
    unexpected = [k for k in sd if k not in used and k not in ignored]
    if missing or bad_shape or unexpected:
        lines = []
        if bad_shape:
            lines.append("wrong shapes: " + "; ".join(bad_shape[:5]))
        if missing:
            lines.append(f"missing keys ({len(missing)}): " + ", ".join(missing[:5]))
        if unexpected:
            lines.append(f"unexpected keys ({len(unexpected)}): " + ", ".join(unexpected[:5]))
        raise CheckpointMismatchError("checkpoint does not fit the model: " + " | ".join(lines))
    for var, arr in assign:
        var.assign(arr.astype(np.float32))
    return ignored


def convert_checkpoint(checkpoint, *, scheme: str, meanface=None, model: str | None = None, out=None,
                       input_size: int = 256, check: bool = True):
    """Convert ``checkpoint`` into a zoo-format network; write ``<out>.weights.h5`` and ``<out>.keras``.

    Args:
        checkpoint: path of an official PIPNet ``.pth``.
        scheme: landmark scheme of the checkpoint (``wflw98``, ``ibug68``, ...).
        meanface: PIPNet ``meanface.txt`` (the one the checkpoint was trained with; neighbour tables come from
            it), a packaged mean face name, or None for the scheme's packaged PIPNet mean face.
        model: zoo arch to build (e.g. ``pipnet_r18``); inferred from the checkpoint when None.
        out: output path stem (default: beside the checkpoint).
        check: run :func:`numeric_check` (needs torch).
    Returns:
        ``(network, report)``.
    """
    from lmkzoo import schemes
    from lmkzoo.assets import SCHEME_MEANFACES, packaged_meanface, read_meanface
    from lmkzoo.codecs.pipnet_codec import PIPNetCodec
    from lmkzoo.families.base import spec_dict
    from lmkzoo.models.pipnet import PIPNet
    from lmkzoo.registry import get_spec, list_models

    sd = load_state_dict(checkpoint)
    info = inspect_state_dict(sd)
    sch = schemes.get(scheme)
    if info["num_points"] != sch.num_points:
        raise CheckpointMismatchError(
            f"checkpoint predicts {info['num_points']} landmarks; scheme {scheme!r} has {sch.num_points}"
        )
    if meanface is None:
        if scheme not in SCHEME_MEANFACES:
            raise InvalidArgumentError(f"no packaged PIPNet mean face for {scheme!r}: pass --meanface meanface.txt")
        mf = packaged_meanface(SCHEME_MEANFACES[scheme])
    elif isinstance(meanface, str) and not Path(meanface).exists() and not meanface.endswith(".txt"):
        mf = packaged_meanface(meanface)
    else:
        mf = read_meanface(meanface)
    if mf.shape != (sch.num_points, 2):
        raise InvalidArgumentError(f"mean face has {len(mf)} points; scheme {scheme!r} has {sch.num_points}")
    backbone = info["backbone"]
    if backbone not in ("resnet18", "resnet34", "resnet50", "resnet101", "mobilenetv2"):
        raise CheckpointMismatchError(
            f"cannot convert a {backbone} PIPNet checkpoint: lmkzoo maps the torchvision ResNet and MobileNetV2 "
            "layouts only (PIPNet's MobileNetV3 comes from its own lib/mobilenetv3.py with different module names)"
        )
    if model is not None:
        wanted = dict(get_spec(model).builder).get("backbone")
        if wanted != backbone:
            # build the requested model anyway so the error lists the mismatching keys
            backbone = wanted
    codec = PIPNetCodec.from_meanface(mf, info["num_neighbors"], (input_size, input_size), info["net_stride"], name="pipnet_codec")
    network = PIPNet.from_preset_args(backbone=backbone, codec=codec, name=model or f"pipnet_{backbone}")
    ignored = convert_pipnet_state_dict(sd, network)
    tag = {"wflw98": "wflw", "ibug68": "300w", "cofw29": "cofw", "aflw19": "aflw"}.get(scheme)
    # the official architecture of this backbone: full width (no backbone_args), with a tag for the scheme
    arch = model or next((n.split(".")[0] for n in list_models("pipnet*")
                          if get_spec(n).builder.get("backbone") == backbone and not get_spec(n).builder.get("backbone_args")
                          and n.endswith(f".{tag}")), None)
    if arch and tag and f"{arch}.{tag}" in list_models(arch):
        network.zoo_spec = spec_dict(get_spec(f"{arch}.{tag}"), {"meanface": mf.round(8).tolist()})
    report = {**info, "ignored_keys": len(ignored), "tensors": len(sd) - len(ignored)}
    if check:
        report.update(numeric_check(sd, network, info))
    if out is not None or checkpoint is not None:
        stem = Path(os.fspath(out)) if out is not None else Path(os.fspath(checkpoint)).with_suffix("")
        stem.parent.mkdir(parents=True, exist_ok=True)
        base = stem.name.removesuffix(".weights.h5").removesuffix(".keras")
        for suffix, weights_only in ((".weights.h5", True), (".keras", False)):
            final = stem.with_name(base + suffix)
            tmp = final.with_name(f".tmp-{os.getpid()}-{final.name}")
            (network.save_weights if weights_only else network.save)(str(tmp))
            os.replace(tmp, final)
            report[suffix.lstrip(".").replace(".", "_")] = str(final)
    return network, report


# ------------------------------------------------------------------------------------------------ numeric check
def torch_forward(sd: dict, x_nchw: np.ndarray, info: dict) -> dict[str, np.ndarray]:
    """PIPNet forward pass written functionally over the state_dict (torch ops): the converter's reference."""
    torch = _torch()
    import torch.nn.functional as F

    t = {k: torch.from_numpy(np.asarray(v)) for k, v in sd.items()}

    def bn(x, p):
        return F.batch_norm(x, t[f"{p}.running_mean"], t[f"{p}.running_var"], t[f"{p}.weight"], t[f"{p}.bias"], False, 0.0, 1e-5)

    def conv(x, p, stride=1, groups=1, bias=False):
        w = t[f"{p}.weight"]
        return F.conv2d(x, w, t.get(f"{p}.bias") if bias else None, stride, w.shape[-1] // 2, 1, groups)

    x = torch.from_numpy(x_nchw.astype(np.float32))
    b = info["backbone"]
    if b.startswith("resnet"):
        x = F.relu(bn(conv(x, "conv1", 2), "bn1"))
        x = F.max_pool2d(x, 3, 2, 1)
        for li in range(1, 5):
            blocks = sorted({int(k.split(".")[1]) for k in t if k.startswith(f"layer{li}.")})
            for bi in blocks:
                p = f"layer{li}.{bi}"
                stride = 2 if (li > 1 and bi == 0) else 1
                idn = x
                if f"{p}.conv3.weight" in t:
                    y = F.relu(bn(conv(x, f"{p}.conv1"), f"{p}.bn1"))
                    y = F.relu(bn(conv(y, f"{p}.conv2", stride), f"{p}.bn2"))
                    y = bn(conv(y, f"{p}.conv3"), f"{p}.bn3")
                else:
                    y = F.relu(bn(conv(x, f"{p}.conv1", stride), f"{p}.bn1"))
                    y = bn(conv(y, f"{p}.conv2"), f"{p}.bn2")
                if f"{p}.downsample.0.weight" in t:
                    idn = bn(conv(x, f"{p}.downsample.0", stride), f"{p}.downsample.1")
                x = F.relu(y + idn)
    elif b == "mobilenetv2":
        x = F.relu6(bn(conv(x, "features.0.0", 2), "features.0.1"))
        i = 1
        while f"features.{i}.conv.0.0.weight" in t:
            p = f"features.{i}.conv"
            inp = x
            if f"{p}.3.weight" in t:  # expand, depthwise, project
                y = F.relu6(bn(conv(x, f"{p}.0.0"), f"{p}.0.1"))
                dw, proj, pbn = f"{p}.1", f"{p}.2", f"{p}.3"
            else:
                y, dw, proj, pbn = x, f"{p}.0", f"{p}.1", f"{p}.2"
            c = t[f"{dw}.0.weight"].shape[0]
            stride = _mnv2_stride(i)
            y = F.relu6(bn(conv(y, f"{dw}.0", stride, groups=c), f"{dw}.1"))
            y = bn(conv(y, proj), pbn)
            x = inp + y if (stride == 1 and inp.shape[1] == y.shape[1]) else y
            i += 1
        x = F.relu6(bn(conv(x, f"features.{i}.0"), f"features.{i}.1"))
    else:
        raise InvalidArgumentError(f"the numeric check has no reference forward for {b!r}")
    stride = info["net_stride"]
    if stride == 16:
        x = F.relu(F.batch_norm(F.conv_transpose2d(x, t["deconv1.weight"], None, 2, 1), t["bn_deconv1.running_mean"],
                                t["bn_deconv1.running_var"], t["bn_deconv1.weight"], t["bn_deconv1.bias"], False, 0.0, 1e-5))
    for n in range({32: 0, 16: 0, 64: 1, 128: 2}[stride]):
        x = F.relu(bn(conv(x, f"layer{5 + n}", 2, bias=True), f"bn{5 + n}"))
    keys = ("scores", "offset_x", "offset_y", "neighbor_x", "neighbor_y")
    return {k: conv(x, h, bias=True).numpy().transpose(0, 2, 3, 1) for k, h in zip(keys, HEADS)}


def _mnv2_stride(block: int) -> int:
    # block index -> stride in torchvision MobileNetV2 (first block of each stage with s=2)
    return 2 if block in (2, 4, 7, 14) else 1


def numeric_check(sd: dict, network, info: dict, *, seed: int = 0) -> dict:
    """Raw outputs and decoded landmarks of the converted model vs. the torch reference on a random input."""
    rng = np.random.default_rng(seed)
    w, h = network.input_size
    x = rng.normal(0, 1, (2, h, w, 3)).astype(np.float32)
    ref = torch_forward(sd, x.transpose(0, 3, 1, 2), info)
    out = {k: np.asarray(v) for k, v in network(x, training=False).items()}
    raw = max(float(np.abs(out[k] - ref[k]).max()) for k in ref)
    dec_k = np.asarray(network.codec(out)["landmarks"])
    dec_t = np.asarray(network.codec({k: v.astype(np.float32) for k, v in ref.items()})["landmarks"])
    return {"max_abs_raw_diff": raw, "max_landmark_diff_px": float(np.abs(dec_k - dec_t).max()),
            "max_landmark_diff_frac": float(np.abs(dec_k - dec_t).max() / w)}
