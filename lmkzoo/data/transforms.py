"""TensorFlow ops on one example for tf.data: crops, one geometric affine, photometric augmentations.

Geometry is applied ONCE: the crop transform and every random geometric augmentation (rotation, scale,
translation, horizontal flip) are composed into a single 2x3 affine that warps the original image and moves
the points, so image and points cannot drift apart and the image is resampled only once (augmented crops
keep real image content at their borders instead of black corners). A flip also permutes the points with
the scheme's flip permutation.

All matrices use lmkzoo's corner convention (``lmkzoo.geometry``); :func:`warp_image` converts to the
centre convention of TensorFlow's sampler, exactly like ``geometry.warp_affine`` does for OpenCV.

Randomness is *stateless*: every random op takes a ``seed`` (a ``[2]`` int tensor) and the pipeline derives
one seed per example from (run seed, epoch, index). The same run seed gives the same augmentations, in any
order of evaluation, after a resume and on any number of workers, which is what makes a resumed training
identical to an uninterrupted one.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

__all__ = [
    "to3", "affine_apply", "invert_affine", "box_affine", "crop_box", "similarity_to_template", "warp_image",
    "random_geometry", "keep_points_inside", "random_erasing", "gaussian_blur", "random_grayscale",
    "color_jitter", "channel_scale", "pca_lighting", "normalize_image", "five_point_hull_box", "split_seed",
    "five_point_matrix",
]

# AlexNet PCA lighting: eigenvalues / eigenvectors of ImageNet RGB covariance (pixels in [0, 1])
_PCA_EIGVAL = np.array([0.2175, 0.0188, 0.0045], np.float32)
_PCA_EIGVEC = np.array([[-0.5675, 0.7192, 0.4009], [-0.5808, -0.0045, -0.8140], [-0.5836, -0.6948, 0.4203]], np.float32)


def split_seed(seed, n: int):
    """``n`` independent stateless seeds ``(n, 2)`` from one."""
    return tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=n)


def _uniform(shape, seed, minval=0.0, maxval=1.0):
    return tf.random.stateless_uniform(shape, seed=tf.cast(seed, tf.int64), minval=minval, maxval=maxval)


def to3(m):
    """2x3 → 3x3 (tf)."""
    return tf.concat([m, tf.constant([[0.0, 0.0, 1.0]], m.dtype)], axis=0)


def _compose(*ms):
    """compose(A, B): A first, then B."""
    out = to3(ms[0])
    for m in ms[1:]:
        out = tf.matmul(to3(m), out)
    return out[:2]


def affine_apply(points, m):
    """Points ``(K, 2)`` through a 2x3 affine."""
    return tf.matmul(points, m[:, :2], transpose_b=True) + m[:, 2]


def invert_affine(m):
    """TF twin of :func:`lmkzoo.geometry.invert_affine` (2x3 → 2x3)."""
    return tf.linalg.inv(to3(tf.cast(m, tf.float32)))[:2]


def crop_box(box, scale=(1.0, 1.0), shift=(0.0, 0.0), square=False):
    """TF twin of :func:`lmkzoo.crops.crop_box` (tested equal)."""
    box = tf.cast(box, tf.float32)
    w, h = box[2] - box[0], box[3] - box[1]
    cx = (box[0] + box[2]) / 2 + shift[0] * w
    cy = (box[1] + box[3]) / 2 + shift[1] * h
    hw, hh = scale[0] * w / 2, scale[1] * h / 2
    if square:
        s = tf.maximum(hw, hh)
        hw, hh = s, s
    return tf.stack([cx - hw, cy - hh, cx + hw, cy + hh])


def five_point_matrix(scheme):
    """The ``(5, K)`` float32 matrix that maps a scheme's ``(K, 2)`` points to its five points (``tf.matmul``), or
    ``None`` for a scheme without 5-point groups."""
    from lmkzoo import schemes

    if scheme.five_point_indices is None:
        return None
    return tf.constant(schemes.conversion_matrix(scheme, "five_point")[..., 0], tf.float32)


def five_point_hull_box(five_points, scale=2.0):
    """TF twin of :func:`lmkzoo.crops.five_point_hull_box`: the square box, side ``scale`` times the larger
    side of the five points' hull, about the hull's centre (LaplaceKL's crop)."""
    fp = tf.cast(five_points, tf.float32)
    lo, hi = tf.reduce_min(fp, 0), tf.reduce_max(fp, 0)
    c, s = (lo + hi) / 2, tf.reduce_max(hi - lo) * float(scale) / 2
    return tf.concat([c - s, c + s], 0)


def box_affine(box, out_size):
    """TF twin of :func:`lmkzoo.geometry.box_to_affine`: the box onto a ``(W, H)`` image."""
    ow, oh = float(out_size[0]), float(out_size[1])
    sx = ow / tf.maximum(box[2] - box[0], 1e-6)
    sy = oh / tf.maximum(box[3] - box[1], 1e-6)
    z = tf.zeros_like(sx)
    return tf.stack([tf.stack([sx, z, -sx * box[0]]), tf.stack([z, sy, -sy * box[1]])])


def similarity_to_template(src, dst):
    """TF twin of :func:`lmkzoo.geometry.similarity_umeyama` for 2-D points (closed form, no SVD)."""
    src = tf.cast(src, tf.float32)
    dst = tf.cast(dst, tf.float32)
    ms, md = tf.reduce_mean(src, 0), tf.reduce_mean(dst, 0)
    s, d = src - ms, dst - md
    var = tf.reduce_sum(s**2)
    a = tf.reduce_sum(s[:, 0] * d[:, 0] + s[:, 1] * d[:, 1]) / var  # s·cos
    b = tf.reduce_sum(s[:, 0] * d[:, 1] - s[:, 1] * d[:, 0]) / var  # s·sin
    r = tf.stack([tf.stack([a, -b]), tf.stack([b, a])])
    t = md - tf.linalg.matvec(r, ms)
    return tf.concat([r, t[:, None]], axis=1)


def warp_image(image, m, out_size, *, interpolation="BILINEAR", fill_value=0.0):
    """Warp ``image`` (H, W, C) with the corner-convention affine ``m`` (image → output) to ``(W, H)``."""
    ow, oh = int(out_size[0]), int(out_size[1])
    inv = tf.linalg.inv(to3(tf.cast(m, tf.float32)))
    # centre convention: src_c = inv(dst_c + 0.5) - 0.5
    shift = tf.linalg.matvec(inv[:2, :2], tf.constant([0.5, 0.5])) + inv[:2, 2] - 0.5
    t = tf.concat([tf.reshape(inv[0, :2], [2]), shift[:1], tf.reshape(inv[1, :2], [2]), shift[1:], tf.zeros([2])], 0)
    dtype = image.dtype
    img = tf.cast(image, tf.float32)[None]
    out = tf.raw_ops.ImageProjectiveTransformV3(
        images=img, transforms=t[None], output_shape=tf.constant([oh, ow], tf.int32),
        fill_value=tf.constant(fill_value, tf.float32), interpolation=interpolation, fill_mode="CONSTANT",
    )[0]
    if dtype == tf.uint8:
        out = tf.cast(tf.clip_by_value(tf.round(out), 0, 255), tf.uint8)
    return out


def _bounded(u_a, u_b, half, dist):
    """A draw in ``[-half, half]``: uniform, or ``N(0, half / 2)`` clipped at two standard deviations (the
    ``sample_from_bounded_gaussian`` of LUVLi / pytorch-pose). ``u_a``, ``u_b``: U(0, 1) draws."""
    if dist == "uniform":
        return (u_a * 2 - 1) * half
    if dist == "normal":  # Box-Muller from two uniforms, so one uniform vector drives every choice
        z = tf.sqrt(-2.0 * tf.math.log(tf.maximum(u_a, 1e-7))) * tf.cos(2 * math.pi * u_b)
        return tf.clip_by_value(z * half / 2, -half, half)
    raise ValueError(f"distribution must be 'uniform' or 'normal'; got {dist!r}")


def random_geometry(out_size, *, flip_p=0.0, rotate_p=0.0, max_rotate_deg=0.0, rotate_dist="uniform", scale_p=0.0,
                    scale_range=(1.0, 1.0), scale_dist="uniform", scale_of_box=False, translate_p=0.0,
                    max_translate_frac=0.0, seed):
    """A random crop→crop affine (about the crop centre) and whether it mirrors.

    Order: flip, then rotation and scale about the centre, then translation (a fraction of the crop size).
    ``rotate_dist`` / ``scale_dist``: ``uniform`` over the range, or ``normal`` (std = half the range, clipped
    to it). The scale factor zooms the content; ``scale_of_box=True`` reads it as a factor on the crop box
    instead (content zoom = 1 / factor, LUVLi's convention).
    """
    w, h = float(out_size[0]), float(out_size[1])
    u = _uniform([10], seed)
    flip = u[0] < flip_p
    theta = tf.where(u[1] < rotate_p, _bounded(u[2], u[8], max_rotate_deg, rotate_dist) * math.pi / 180, 0.0)
    lo, hi = float(scale_range[0]), float(scale_range[1])
    s = tf.where(u[3] < scale_p, (lo + hi) / 2 + _bounded(u[4], u[9], (hi - lo) / 2, scale_dist), 1.0)
    if scale_of_box:
        s = 1.0 / s
    do_t = u[5] < translate_p
    tx = tf.where(do_t, (u[6] * 2 - 1) * max_translate_frac * w, 0.0)
    ty = tf.where(do_t, (u[7] * 2 - 1) * max_translate_frac * h, 0.0)
    f = tf.where(flip, tf.constant([[-1.0, 0.0, w], [0.0, 1.0, 0.0]]), tf.constant([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]))
    c, sn = tf.cos(theta) * s, tf.sin(theta) * s
    cx, cy = w / 2, h / 2
    rot = tf.stack([tf.stack([c, -sn, cx - c * cx + sn * cy + tx]), tf.stack([sn, c, cy - sn * cx - c * cy + ty])])
    return _compose(f, rot), flip


def keep_points_inside(m, points, visible, out_size, margin: float = 0.0):
    """Shrink the content about the crop centre (composed after ``m``) just enough that every visible point lands
    inside the crop (LUVLi's ``keep_pts_inside``); ``m`` is returned unchanged when they already do."""
    w, h = float(out_size[0]), float(out_size[1])
    p = affine_apply(tf.cast(points, tf.float32), m)
    d = tf.abs(p - tf.constant([w / 2, h / 2]))
    room = tf.constant([w / 2 - margin, h / 2 - margin])
    need = tf.reduce_max(tf.where(tf.cast(visible, tf.bool)[:, None], d / room, 0.0))
    k = 1.0 / tf.maximum(need, 1.0)
    shrink = tf.stack([tf.stack([k, 0.0, (1 - k) * w / 2]), tf.stack([0.0, k, (1 - k) * h / 2])])
    return _compose(m, shrink)


def _maybe(apply, fn, img):
    """``fn(img)`` where ``apply`` (a scalar bool tensor) is true, else ``img``; the op is not computed when it is
    not applied (``tf.cond``, not ``tf.where``), which matters for throughput."""
    return tf.cond(apply, lambda: fn(img), lambda: img)


def random_erasing(image, p=0.5, max_frac=0.4, min_frac=0.0, fill="color", *, seed, mode="sides",
                   area=(0.02, 0.4), aspect=(0.3, 1 / 0.3)):
    """With probability ``p``, fill a random rectangle.

    ``mode``: ``sides`` (each side ``U(min_frac, max_frac)`` of the image, rectangle inside the image: PIPNet's
    occlusion), ``area`` (area ``U(area)`` of the image, aspect ratio log-uniform in ``aspect``: Zhong et al.'s
    random erasing, as used by Huang et al. / Earp et al.), ``centered`` (centre uniform over the image, half
    sides ``U(0, max_frac / 2)`` of the image, clipped at the border: LUVLi's Bulat-style occlusion).
    ``fill``: ``color`` (one random colour), ``noise`` (uniform per pixel) or ``zero`` (black).
    """
    if mode not in ("sides", "area", "centered"):
        raise ValueError(f"erasing mode must be 'sides', 'area' or 'centered'; got {mode!r}")
    if fill not in ("color", "noise", "zero"):
        raise ValueError(f"erasing fill must be 'color', 'noise' or 'zero'; got {fill!r}")
    img = tf.cast(image, tf.float32)
    s_draw, s_fill = tf.unstack(split_seed(seed, 2))
    u = _uniform([5], s_draw)

    def erase(img):
        h, w = tf.shape(img)[0], tf.shape(img)[1]
        hf, wf = tf.cast(h, tf.float32), tf.cast(w, tf.float32)
        if mode == "sides":
            rh = (min_frac + u[0] * (max_frac - min_frac)) * hf
            rw = (min_frac + u[1] * (max_frac - min_frac)) * wf
            y0 = u[2] * (hf - tf.floor(rh) + 1)
            x0 = u[3] * (wf - tf.floor(rw) + 1)
        elif mode == "area":
            a = (area[0] + u[0] * (area[1] - area[0])) * hf * wf
            r = tf.exp(math.log(aspect[0]) + u[1] * (math.log(aspect[1]) - math.log(aspect[0])))
            rh = tf.minimum(tf.sqrt(a * r), hf)
            rw = tf.minimum(tf.sqrt(a / r), wf)
            y0 = u[2] * (hf - tf.floor(rh) + 1)
            x0 = u[3] * (wf - tf.floor(rw) + 1)
        else:
            cy, cx = u[2] * hf, u[3] * wf
            hh, hw = u[0] * max_frac / 2 * hf, u[1] * max_frac / 2 * wf
            y0, x0 = tf.maximum(cy - hh, 0.0), tf.maximum(cx - hw, 0.0)
            rh, rw = tf.minimum(cy + hh, hf) - y0, tf.minimum(cx + hw, wf) - x0
        y0, x0 = tf.cast(tf.floor(y0), tf.int32), tf.cast(tf.floor(x0), tf.int32)
        rh, rw = tf.cast(tf.floor(rh), tf.int32), tf.cast(tf.floor(rw), tf.int32)
        ys, xs = tf.range(h)[:, None], tf.range(w)[None, :]
        mask = (ys >= y0) & (ys < y0 + rh) & (xs >= x0) & (xs < x0 + rw)
        if fill == "noise":
            value = _uniform(tf.shape(img), s_fill, 0.0, 255.0)
        elif fill == "zero":
            value = tf.zeros_like(img)
        else:
            value = tf.broadcast_to(_uniform([3], s_fill, 0.0, 255.0), tf.shape(img))
        return tf.where(mask[..., None], value, img)

    return _maybe(u[4] < p, erase, img)


def gaussian_blur(image, p=0.3, max_sigma=5.0, *, seed):
    """With probability ``p``, blur with a Gaussian of standard deviation ``U(0, max_sigma)`` pixels."""
    img = tf.cast(image, tf.float32)
    u = _uniform([2], seed)
    radius = int(math.ceil(3 * max_sigma))

    def blur(img):
        sigma = tf.maximum(u[1] * max_sigma, 1e-3)
        x = tf.range(-radius, radius + 1, dtype=tf.float32)
        k = tf.exp(-0.5 * (x / sigma) ** 2)
        k = k / tf.reduce_sum(k)
        kx = tf.tile(tf.reshape(k, [1, -1, 1, 1]), [1, 1, 3, 1])
        ky = tf.tile(tf.reshape(k, [-1, 1, 1, 1]), [1, 1, 3, 1])
        padded = tf.pad(img[None], [[0, 0], [radius, radius], [radius, radius], [0, 0]], mode="REFLECT")
        out = tf.nn.depthwise_conv2d(padded, kx, [1, 1, 1, 1], "VALID")
        return tf.nn.depthwise_conv2d(out, ky, [1, 1, 1, 1], "VALID")[0]

    return _maybe(u[0] < p, blur, img)


def random_grayscale(image, p=0.2, *, seed):
    img = tf.cast(image, tf.float32)

    def gray(img):
        g = tf.reduce_sum(img * tf.constant([0.299, 0.587, 0.114]), axis=-1, keepdims=True)
        return tf.tile(g, [1, 1, 3])

    return _maybe(_uniform([], seed) < p, gray, img)


def color_jitter(image, brightness=0.0, contrast=0.0, saturation=0.0, p=1.0, *, seed):
    """torchvision-style jitter: factors ``U(1 - v, 1 + v)`` for brightness, contrast and saturation."""
    img = tf.cast(image, tf.float32)
    u = _uniform([4], seed)

    def jitter(out):
        if brightness:
            out = out * (1 - brightness + 2 * brightness * u[0])
        if contrast:
            mean = tf.reduce_mean(tf.reduce_sum(out * tf.constant([0.299, 0.587, 0.114]), -1))
            out = (out - mean) * (1 - contrast + 2 * contrast * u[1]) + mean
        if saturation:
            gray = tf.reduce_sum(out * tf.constant([0.299, 0.587, 0.114]), -1, keepdims=True)
            out = (out - gray) * (1 - saturation + 2 * saturation * u[2]) + gray
        return tf.clip_by_value(out, 0.0, 255.0)

    return _maybe(u[3] < p, jitter, img)


def channel_scale(image, lo=0.6, hi=1.4, p=1.0, *, seed):
    """With probability ``p``, multiply each colour channel by its own factor ``U(lo, hi)`` (LUVLi / pytorch-pose
    colour augmentation), clipped to 0-255."""
    img = tf.cast(image, tf.float32)
    u = _uniform([4], seed)
    return _maybe(u[3] < p, lambda x: tf.clip_by_value(x * (lo + u[:3] * (hi - lo)), 0.0, 255.0), img)


def pca_lighting(image, sigma=0.05, p=1.0, *, seed):
    """AlexNet PCA lighting noise: add ``eigvec @ (alpha * eigval)``, ``alpha ~ N(0, sigma)`` (pixels 0-255),
    with probability ``p``."""
    img = tf.cast(image, tf.float32)
    s_alpha, s_apply = tf.unstack(split_seed(seed, 2))
    alpha = tf.random.stateless_normal([3], seed=s_alpha, stddev=sigma)
    rgb = tf.linalg.matvec(tf.constant(_PCA_EIGVEC), alpha * tf.constant(_PCA_EIGVAL)) * 255.0
    return _maybe(_uniform([], s_apply) < p, lambda x: tf.clip_by_value(x + rgb, 0.0, 255.0), img)


def normalize_image(image, mean, std):
    """``(x / 255 - mean) / std`` as float32 (the same arithmetic as ``ImageNormalization``)."""
    scale = (1.0 / (255.0 * np.asarray(std))).astype(np.float32)
    offset = (-np.asarray(mean) / np.asarray(std)).astype(np.float32)
    return tf.cast(image, tf.float32) * scale + offset
