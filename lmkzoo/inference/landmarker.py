"""``Landmarker``: one model, any runtime, landmarks in original image pixels.

``predict`` turns each face (a caller box, caller five points, a detector box, or the whole image) into
the crop its model was trained on (the zoo spec's crop policy), runs all crops through the serving graph
in batches (network + the family codec's decode, compiled once), and maps points, and covariances where
the family has them, back to the image with the inverse crop transform.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import numpy as np

from lmkzoo import crops as crops_lib
from lmkzoo import geometry, schemes
from lmkzoo.crops import crop_affine
from lmkzoo.errors import InvalidArgumentError, NoFaceFoundError, ShapeMismatchError
from lmkzoo.image_io import load_images

__all__ = ["FaceLandmarks", "Landmarker"]

#: the factory of the box-based model that supplies five points to aligned families given only boxes (the embedded
#: default model); :mod:`lmkzoo.inference.loader` sets it when it is imported (``lmkzoo.inference`` imports it), so
#: that this module never imports the loader (layers import one way: docs/architecture.md)
five_point_helper_factory = None


@dataclasses.dataclass
class FaceLandmarks:
    """Landmarks of one face. ``points`` are ``(K, 2)`` float32 image pixels (lmkzoo's corner convention)."""

    points: np.ndarray
    scores: np.ndarray
    box: np.ndarray
    scheme: str
    model: str
    covariance: np.ndarray | None = None

    @property
    def uncertainty(self) -> np.ndarray | None:
        """Scalar uncertainty per point ``|Σ|^(1/4)`` (pixels), where the family predicts a covariance."""
        if self.covariance is None:
            return None
        from lmkzoo.metrics.uncertainty import scalar_uncertainty

        return scalar_uncertainty(self.covariance).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        d = {
            "model": self.model,
            "scheme": self.scheme,
            "box": [round(float(v), 2) for v in self.box],
            "points": np.round(self.points, 3).tolist(),
            "scores": np.round(self.scores, 4).tolist(),
        }
        if self.covariance is not None:
            d["covariance"] = np.round(self.covariance, 4).tolist()
            d["uncertainty"] = np.round(self.uncertainty, 4).tolist()
        return d


def _check_points(value, shape: tuple, name: str, accepted: str) -> np.ndarray:
    """``value`` as ``(N, *shape)`` float64 (one item of ``shape`` becomes N = 1; an empty list N = 0); otherwise
    :class:`ShapeMismatchError` naming the argument, the shape received and ``accepted``."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ShapeMismatchError(f"{name} must be numbers shaped {accepted}; got {type(value).__name__} {value!r:.80}") from None
    if arr.size == 0:
        return np.zeros((0, *shape))
    if arr.shape == shape:
        arr = arr[None]
    if arr.shape[1:] != shape:
        raise ShapeMismatchError(f"{name} must be shaped {accepted}; got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise InvalidArgumentError(f"{name} must be finite; got {arr.tolist()!r:.120}")
    return arr


def _check_box(box: np.ndarray, i: int, image_size, where: str) -> np.ndarray:
    """A face box that can be cropped: positive size, overlapping the image, at most 100x the image's larger side."""
    w, h = image_size
    x0, y0, x1, y1 = box
    limit = 100 * max(w, h)
    if not (x1 > x0 and y1 > y0):
        problem = "x1 <= x0 or y1 <= y0"
    elif x1 <= 0 or y1 <= 0 or x0 >= w or y0 >= h:
        problem = f"it does not overlap the {w}x{h} image"
    elif max(x1 - x0, y1 - y0) > limit:
        problem = f"it is over {limit} px across, 100 times the {w}x{h} image"
    else:
        return box
    raise InvalidArgumentError(f"boxes{where}[{i}] = {[float(v) for v in box]} cannot be a face box: {problem}; a box is "
                               "(x0, y0, x1, y1) in image pixels with x0 < x1, y0 < y1, overlapping the image")


class Landmarker:
    """A zoo model ready for inference. Build it with :func:`lmkzoo.load`.

    Every runtime is safe to call from many threads at once (results equal serial calls): the LiteRT runner
    and the built-in detector give each concurrent call an interpreter of its own, ONNX Runtime sessions and
    the Keras ``tf.function`` are thread-safe.

    Attributes:
        spec: the :class:`~lmkzoo.registry.ModelSpec`.
        network: the ``keras.Model`` (normalised crop → raw outputs) for training and fine-tuning. A Landmarker
            that runs on LiteRT builds it on first access (that imports Keras and TensorFlow); a Landmarker over
            an exported file alone has none.
        scheme: the :class:`~lmkzoo.schemes.Scheme` of its points.
    """

    def __init__(self, spec, network=None, *, runner=None, batch_size: int = 16, network_factory=None):
        import threading

        self.spec = spec
        self._network = network
        self._network_factory = network_factory
        self.scheme = schemes.get(spec.scheme)
        self.batch_size = int(batch_size)
        self._runner = runner
        self._detector = None
        self._lock = threading.RLock()  # lazy members (network, Keras runner) are built once, whatever the threads

    # ------------------------------------------------------------------------------------------ runtime
    @property
    def network(self):
        """The Keras network, built (and its weights loaded) on first access where this Landmarker runs on an
        exported form of it; None for a Landmarker over an exported file alone."""
        if self._network is None and self._network_factory is not None:
            with self._lock:
                if self._network is None:
                    self._network = self._network_factory()
        return self._network

    @network.setter
    def network(self, value):
        self._network = value

    @property
    def runner(self):
        """What runs the serving graph: a LiteRT / ONNX Runtime runner, or the Keras one (built on first use)."""
        if self._runner is None:
            with self._lock:
                if self._runner is None:
                    if self.network is None:
                        raise InvalidArgumentError("this Landmarker has neither a network nor a runtime")
                    from lmkzoo.runtimes import KerasRunner

                    self._runner = KerasRunner(self.serving_model())
        return self._runner

    @property
    def runtime(self) -> str:
        """``"tflite"``, ``"onnx"`` or ``"keras"``."""
        return getattr(self._runner, "runtime", "keras") if self._runner is not None else "keras"

    def serving_model(self, *, with_affine: bool = False):
        """The serving ``keras.Model`` (uint8 crop [+ crop→image affine] → decoded landmarks)."""
        from lmkzoo.export.serving import build_serving_model

        if self.network is None:
            raise InvalidArgumentError(f"a {self.runtime} Landmarker has no Keras network to build a serving model from")
        return build_serving_model(self.network, mean=self.spec.mean, std=self.spec.std, with_affine=with_affine)

    @property
    def input_size(self) -> tuple[int, int]:
        return self.spec.input_size

    # ------------------------------------------------------------------------------------------ faces
    def _default_detector(self):
        if self._detector is None:
            from lmkzoo.detection import default_detector

            self._detector = default_detector()
        return self._detector

    def _faces_for_image(self, img, boxes, five_points, detector, where: str = ""):
        """``[(box, five_points_or_None), ...]`` for one image (``where``: " of image i" in messages)."""
        h, w = img.shape[:2]
        policy = self.spec.crop.get("policy", "box")
        if five_points is not None and boxes is not None:
            raise InvalidArgumentError(
                f"pass boxes= or five_points= for a face{where}, not both: the model would use one and ignore the "
                f"other ({self.spec.name} crops by {policy}; five points alone work with every model)")
        if five_points is not None:
            fp = _check_points(five_points, (5, 2), f"five_points{where}", "(N, 5, 2) or (5, 2) (x, y) per face")
            # a box-crop model takes the face box the five points stand for, not the box of the points themselves
            box = crops_lib.face_box_from_five_points if policy not in ("five_point", "five_point_hull") else geometry.points_bbox
            return [(box(f), f) for f in fp]
        if boxes is not None:
            b = _check_points(boxes, (4,), f"boxes{where}", "(N, 4) or (4,) (x0, y0, x1, y1) per face")
            return [(_check_box(bb, i, (w, h), where), None) for i, bb in enumerate(b)]
        if detector is None:
            return [(np.array([0.0, 0.0, w, h]), None)]
        det = self._default_detector() if isinstance(detector, str) and detector == "default" else detector
        if not callable(det):
            raise InvalidArgumentError(f"detector must be 'default', None or a callable image -> boxes; got {detector!r}")
        found = det(img)
        if policy in ("five_point", "five_point_hull") and getattr(found, "five_points", None) is not None:
            return list(zip(found.boxes, found.five_points))
        b = np.asarray(getattr(found, "boxes", found), dtype=np.float64).reshape(-1, 4)
        return [(bb, None) for bb in b]

    def _fill_five_points(self, images, faces):
        """Aligned families given only boxes: the embedded default (box-based) model supplies five points."""
        need = [[(b, None) for b, fp in f if fp is None] for f in faces]
        if not any(need):
            return faces
        if getattr(self, "_box_helper", None) is None:
            self._box_helper = five_point_helper_factory()
        helper = self._box_helper
        if helper.spec.crop.get("policy", "box") != "box":
            raise InvalidArgumentError(f"{helper.spec.name} cannot supply five points: it is not a box-crop model")
        found = helper._predict_faces(images, need)
        out = []
        for f, res in zip(faces, found):
            it = iter(res)
            out.append([(b, fp if fp is not None else helper.scheme.five_points(next(it).points)) for b, fp in f])
        return out

    # ------------------------------------------------------------------------------------------ predict
    def _run(self, crops: np.ndarray) -> dict[str, np.ndarray]:
        if len(crops) <= self.batch_size:
            return self.runner(crops)
        outs = []
        for i in range(0, len(crops), self.batch_size):
            outs.append(self.runner(crops[i : i + self.batch_size]))
        return {k: np.concatenate([o[k] for o in outs]) for k in outs[0]}

    def run_crops(self, crops: np.ndarray, *, flip_test: bool = False) -> dict[str, np.ndarray]:
        """The serving graph's outputs (crop pixels) for uint8 ``(N, H, W, 3)`` crops, in batches; ``flip_test``
        averages each crop with its mirror."""
        return self._run_flip(crops) if flip_test else self._run(crops)

    def _run_flip(self, crops: np.ndarray) -> dict[str, np.ndarray]:
        """Average of the crop and its mirror (mirrored points flipped back with the scheme permutation)."""
        n = len(crops)
        both = self._run(np.concatenate([crops, crops[:, :, ::-1]]))
        w = self.input_size[0]
        perm = list(self.scheme.flip_permutation)
        pts = both["landmarks"]
        flipped = pts[n:][:, perm].copy()
        flipped[..., 0] = w - flipped[..., 0]
        out = {"landmarks": (pts[:n] + flipped) / 2, "scores": (both["scores"][:n] + both["scores"][n:][:, perm]) / 2}
        if "covariance" in both:
            cov_f = both["covariance"][n:][:, perm].copy()
            cov_f[..., 0, 1] *= -1
            cov_f[..., 1, 0] *= -1
            out["covariance"] = (both["covariance"][:n] + cov_f) / 2
        return out

    def crop_faces(self, images, faces_per_image):
        """Crops of every face (``faces_per_image``: per image a list of ``(box, five points or None)``) under the
        model's crop policy, cut as ``predict`` cuts them: ``(crops (N, H, W, 3) uint8, affines (N, 2, 3)
        image → crop, owners (image index per crop), boxes)``."""
        w, h = self.input_size
        owners = [idx for idx, faces in enumerate(faces_per_image) for _ in faces]
        boxes = [np.asarray(box, dtype=np.float64) for faces in faces_per_image for box, _ in faces]
        if not owners:
            return np.zeros((0, h, w, 3), np.uint8), np.zeros((0, 2, 3)), owners, boxes
        if self.spec.crop.get("policy", "box") == "box":  # every face's affine in one vectorised step
            affines = crop_affine(self.spec.crop, (w, h), box=np.stack(boxes))
        else:
            affines = np.stack([
                crop_affine(self.spec.crop, (w, h), box=box, five_points=fp, image_size=images[idx].shape[1::-1])
                for idx, faces in enumerate(faces_per_image) for box, fp in faces])
        crops = np.empty((len(owners), h, w, 3), np.uint8)
        for i, (idx, m) in enumerate(zip(owners, affines)):
            crops[i] = geometry.warp_affine(images[idx], m, (w, h))
        return crops, affines, owners, boxes

    def crops(self, images, *, boxes=None, five_points=None, detector="default"):
        """The network inputs ``predict`` would cut: uint8 ``(N, H, W, 3)`` crops of every face found, and their
        ``(N, 2, 3)`` image → crop affines (e.g. calibration data for an int8 export)."""
        imgs, faces = self._faces(images, boxes, five_points, detector, require_face=False)[:2]
        crops, affines = self.crop_faces(imgs, faces)[:2]
        return crops, affines

    #: network outputs that are per-landmark maps (heatmap-based families, PIPNet), in order of preference
    _MAP_OUTPUTS = ("heatmaps", "scores")

    def heatmaps(self, images, *, boxes=None, five_points=None, detector="default"):
        """Where the network looks: the crops ``predict`` cuts and the network's per-landmark maps for each face,
        ``(crops (N, H, W, 3) uint8, maps (N, h, w, K) float32)`` (Keras runtime). The maps are the raw
        ``heatmaps`` of heatmap-based families (heatmap, LaplaceKL, UGLLI's last hourglass) and PIPNet's ``scores``
        grid; draw them with :func:`lmkzoo.visualize.heatmap_overlay`. LOTR regresses coordinates and has none.
        """
        if self.network is None:
            raise InvalidArgumentError(f"heatmaps need the Keras network; this Landmarker runs on {self.runtime}")
        outputs = self.network.output if isinstance(self.network.output, dict) else {}
        key = next((k for k in self._MAP_OUTPUTS if k in outputs), None)
        if key is None:
            raise InvalidArgumentError(f"{self.spec.name} ({self.spec.family}) outputs {sorted(outputs)}: no per-landmark "
                                       "maps to show")
        crops, _ = self.crops(images, boxes=boxes, five_points=five_points, detector=detector)
        if not len(crops):
            return crops, np.zeros((0, *outputs[key].shape[1:]), np.float32)
        if getattr(self, "_raw_fn", None) is None:
            import tensorflow as tf

            from lmkzoo.export.serving import build_serving_model

            raw = build_serving_model(self.network, mean=self.spec.mean, std=self.spec.std, decode=False)
            self._raw_fn = tf.function(lambda x: raw(x, training=False)[key], reduce_retracing=True)
        maps = [self._raw_fn(crops[i : i + self.batch_size]).numpy() for i in range(0, len(crops), self.batch_size)]
        return crops, np.concatenate(maps).astype(np.float32)

    def _predict_faces(self, images, faces_per_image, flip_test=False):
        batch, affines, owners, boxes = self.crop_faces(images, faces_per_image)
        results: list[list[FaceLandmarks]] = [[] for _ in images]
        if not len(batch):
            return results
        out = self._run_flip(batch) if flip_test else self._run(batch)
        inv = geometry.invert_affine(affines)
        pts = geometry.apply_affine(out["landmarks"].astype(np.float64), inv)
        cov = out.get("covariance")
        if cov is not None:
            cov = geometry.transform_covariance(cov, inv)
        for i, owner in enumerate(owners):
            results[owner].append(
                FaceLandmarks(
                    points=pts[i].astype(np.float32),
                    scores=out["scores"][i].astype(np.float32),
                    box=boxes[i].astype(np.float32),
                    scheme=self.scheme.name,
                    model=self.spec.name,
                    covariance=None if cov is None else cov[i].astype(np.float32),
                )
            )
        return results

    def predict(self, images, *, boxes=None, five_points=None, detector="default", flip_test: bool = False,
                require_face: bool = False):
        """Landmarks of every face.

        Args:
            images: a path, an RGB uint8 ``(H, W, 3)`` array (grayscale / RGBA are converted), a PIL image, the
                bytes of an image file, or a list of them.
            boxes: face boxes ``(x0, y0, x1, y1)``: ``(N, 4)`` (or one ``(4,)``) for one image, or one such list
                per image. An empty list gives no faces. Boxes are face boxes in the detector's sense; the model's
                crop policy (zoo.yaml ``input.crop``) turns them into its training crop. Boxes of another shape,
                not finite, empty, outside the image or absurdly large raise errors naming the box.
            five_points: ``(N, 5, 2)`` per image (left eye, right eye, nose, left / right mouth corner). Models that
                crop by box use the face box the five points stand for
                (:func:`lmkzoo.crops.face_box_from_five_points`). Give ``boxes`` or ``five_points``, not both.
            detector: ``"default"`` (the built-in detector), ``None`` (the whole image is one face) or a
                callable ``image -> boxes``.
            flip_test: average with the mirrored crop (scheme flip permutation).
            require_face: raise :class:`NoFaceFoundError` for an image without faces instead of returning [].
        Returns:
            one image: ``list[FaceLandmarks]``; a list of images: a list of such lists.
        """
        imgs, faces, single = self._faces(images, boxes, five_points, detector, require_face=require_face)
        results = self._predict_faces(imgs, faces, flip_test)
        return results[0] if single else results

    def predict_video(self, video, *, smoothing: str | None = "one_euro", fps: float | None = None, detector="default",
                      min_cutoff: float = 1.0, beta: float = 20.0, d_cutoff: float = 1.0, max_frames: int | None = None,
                      progress: bool = False) -> list:
        """Landmarks of one tracked face (the largest at the start) in every frame.

        Each frame runs the detector; the face kept is the one overlapping the previous frame's face most (IoU
        > 0.3), else the largest. ``smoothing="one_euro"`` filters the points (:class:`~lmkzoo.inference.tracking.OneEuroFilter`,
        speeds in face-box diagonals per second, so ``beta`` does not depend on resolution); the filter restarts
        after a frame without a face.

        Args:
            video: a video file path (OpenCV decodes it) or an iterable of RGB uint8 frames.
            smoothing: ``"one_euro"`` or ``None``.
            fps: frame rate (default: the file's, else 30).
            min_cutoff, beta, d_cutoff: One Euro parameters (Hz, 1/face size, Hz).
        Returns:
            one :class:`FaceLandmarks` (or ``None`` where no face was found) per frame.
        """
        from lmkzoo.inference.tracking import track_video

        return track_video(self, video, smoothing=smoothing, fps=fps, detector=detector, min_cutoff=min_cutoff,
                           beta=beta, d_cutoff=d_cutoff, max_frames=max_frames, progress=progress)

    def _faces(self, images, boxes, five_points, detector, *, require_face):
        """``(images, [(box, five_points_or_None), ...] per image, single)`` for the inputs of ``predict``."""
        imgs, single = load_images(images)
        n = len(imgs)

        def per_image(arg, name):
            if arg is None:
                return [None] * n
            if single:
                return [arg]
            if len(arg) != n:
                raise ShapeMismatchError(f"{name} must have one entry per image ({n}); got {len(arg)}")
            return list(arg)

        bx, fps = per_image(boxes, "boxes"), per_image(five_points, "five_points")
        jobs = [(img, b, f, detector, "" if single else f" of image {i}") for i, (img, b, f) in enumerate(zip(imgs, bx, fps))]
        detecting = detector is not None and any(b is None and f is None for _, b, f, _, _ in jobs)
        if detecting and len(jobs) > 1:  # the detector on a few images at once (thread-safe, LiteRT releases the GIL)
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(min(len(jobs), os.cpu_count() or 1, 4)) as pool:
                faces = list(pool.map(lambda job: self._faces_for_image(*job), jobs))
        else:
            faces = [self._faces_for_image(*job) for job in jobs]
        if require_face:
            empty = [i for i, f in enumerate(faces) if not f]
            if empty:
                raise NoFaceFoundError(f"no face found in image(s) {empty}")
        if self.spec.crop.get("policy", "box") in ("five_point", "five_point_hull"):
            faces = self._fill_five_points(imgs, faces)
        return imgs, faces, single

    # ------------------------------------------------------------------------------------------ export
    def export(self, path, format: str = "tflite", *, quantize: str | None = None, representative_data=None,
               with_affine: bool = False, batch_size: int | None | str = "auto", data_dir=None,
               num_calibration: int = 128):
        """Export the serving graph (uint8 crop → landmarks, scores[, covariance], decoding included).

        Args:
            path: output file (``.tflite`` / ``.onnx``) or folder (``saved_model``).
            format: ``"tflite"``, ``"onnx"`` or ``"saved_model"``.
            quantize: TFLite only: ``None``, ``"float16"``, ``"dynamic"`` or ``"int8"``.
            representative_data: int8 calibration data: uint8 crops ``(N, H, W, 3)``, a folder of images (faces
                found by the detector), a list of images, or a TFDS split ``"name[/config][:split]"``.
            with_affine: the graph also takes ``crop_to_image`` ``(B, 2, 3)`` and returns image pixels.
            batch_size: ``"auto"`` (the default): a fixed batch of 1 for TFLite, the file a phone's GPU delegate
                takes as it is, and a dynamic batch for ONNX and SavedModel; ``None``: a dynamic batch (CPU runtimes
                batch many crops per call); or a fixed batch size.
            num_calibration: at most this many calibration crops.
        Returns:
            the written path. The file carries its metadata (scheme, landmark names, input contract, outputs).
        """
        from pathlib import Path

        from lmkzoo.export import convert
        from lmkzoo.export.calibration import representative_crops
        from lmkzoo.export.metadata import make_metadata

        if format not in convert.FORMATS:
            raise InvalidArgumentError(f"format must be one of {list(convert.FORMATS)}; got {format!r}")
        if quantize is not None and format != "tflite":
            raise InvalidArgumentError(f"quantize applies to TFLite exports only; got quantize={quantize!r} with format={format!r}")
        if self.network is None:
            raise InvalidArgumentError(f"a {self.runtime} Landmarker cannot be exported again; export from the Keras model "
                                       f"(lmkzoo.load({self.spec.name!r}))")
        if isinstance(batch_size, str) and batch_size == "auto":
            batch_size = 1 if format == "tflite" else None
        if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer))
                                       or batch_size < 1):
            raise InvalidArgumentError(f"batch_size must be 'auto', None (dynamic) or a positive integer; got {batch_size!r}")
        path = Path(path)
        if path.is_dir() and format != "saved_model":
            raise InvalidArgumentError(f"the export path {path} is a folder; a {format} export is one file: give a file "
                                       f"name such as {path / (self.spec.name + '.' + format)}")
        if path.exists() and not path.is_dir() and format == "saved_model":
            raise InvalidArgumentError(f"the export path {path} is a file; a SavedModel is a folder")
        rep = calibration = None
        if quantize == "int8":  # before the conversion: bad calibration data fails fast
            if representative_data is None:
                convert._check_quantize(quantize, None)
            rep, calibration = representative_crops(self, representative_data, num=num_calibration, data_dir=data_dir)
        serving = self.serving_model(with_affine=with_affine)
        meta = make_metadata(self.spec, outputs=list(serving.output), with_affine=with_affine, fmt=format,
                             quantize=quantize, batch_size=batch_size)
        if calibration is not None:
            meta["calibration"] = calibration
        if format == "onnx":
            return convert.export_onnx(serving, path, metadata=meta, batch_size=batch_size)
        if format == "saved_model":
            return convert.export_saved_model(serving, path, metadata=meta, batch_size=batch_size)
        return convert.export_tflite(serving, path, metadata=meta, quantize=quantize, representative=rep,
                                     batch_size=batch_size, float_scopes=(self.network.codec.name,))

    def __repr__(self) -> str:
        return f"Landmarker({self.spec.name!r}, family={self.spec.family!r}, scheme={self.scheme.name!r}, runtime={self.runtime!r})"
