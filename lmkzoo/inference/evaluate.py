"""``lmkzoo evaluate``: a model on a TFDS split → NME / FR / AUC (overall and per subset) + CED plot.

The faces go through the model's *deployed* path, the one ``Landmarker.predict`` takes with the dataset's boxes:
the crop of the spec's crop policy around the dataset's box (or the five points of its landmarks, for aligned
families), uint8 into the Landmarker's runner (the Keras serving graph, or an exported TFLite / ONNX file), and
the decoded points back to image pixels with the inverse crop affine.

Each dataset has a standard protocol (:data:`PROTOCOLS`: normalisation and cutoff, overridable) and its
subsets where it defines them: 300-W common / challenge (and common's HELEN / LFPW parts, and the 300-W test's
indoor / outdoor), WFLW's six
attributes, 300VW's categories, AFLW-19's frontal faces, COFW's occluded points (NME over occluded points).
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np

from lmkzoo.errors import InvalidArgumentError

__all__ = ["PROTOCOLS", "evaluate", "EvaluationReport", "parse_data"]

#: dataset → (normalisation, FR / AUC cutoff): 0.10 for inter-ocular 300-W / WFLW / COFW (PIPNet), 0.08 for
#: box-normalised JD-landmark (Earp et al.) and Menpo, 0.08 for inter-ocular 300VW (Chrysos et al.'s benchmark: outer
#: eye corners, AUC to 0.08), 0.07 for AFLW's box AUC (UGLLI / LUVLi)
PROTOCOLS = {
    "ibug_300w": ("inter_ocular", 0.10),
    "wflw": ("inter_ocular", 0.10),
    "cofw": ("inter_ocular", 0.10),
    "aflw19": ("bbox", 0.07),
    "jd_landmark": ("bbox", 0.08),
    "menpo2d": ("bbox", 0.08),
    "ibug_300vw": ("inter_ocular", 0.08),
    "landmark_folder": ("inter_ocular", 0.10),
}
_EXTRA = ("subset", "source", "attributes", "category", "frontal", "occluded", "image/filename", "face_index")
_300VW_CATEGORIES = {1: "category1", 2: "category2", 3: "category3"}


@dataclasses.dataclass
class EvaluationReport:
    model: str
    runtime: str
    data: str
    split: str
    norm: str
    cutoff: float
    num_faces: int
    nme: float
    fr: float
    auc: float
    subsets: dict
    seconds: float
    uncertainty_error_pearson: dict | None = None
    files: dict | None = None
    boxes: str = "annotation"
    faces_missed: int = 0
    #: NME of every face in dataset order (inf: missed by the detector); in report.json, not in to_dict()
    per_face_nme: list = dataclasses.field(default_factory=list, repr=False)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d.pop("per_face_nme")
        return d

    def markdown(self) -> str:
        head = (f"# {self.model} on {self.data} [{self.split}]\n\nruntime {self.runtime}; NME normalised by "
                f"{self.norm}; FR and AUC at {self.cutoff}; {self.num_faces} faces; {self.seconds:.1f} s; "
                f"{_BOX_WORDS[self.boxes]}{f' ({self.faces_missed} missed: failures in FR and AUC)' if self.faces_missed else ''}\n\n")
        rows = [("full", {"num_faces": self.num_faces, "nme": self.nme, "fr": self.fr, "auc": self.auc})]
        rows += list(self.subsets.items())
        table = "| subset | faces | NME (%) | FR (%) | AUC |\n|---|---|---|---|---|\n" + "\n".join(
            f"| {name} | {r['num_faces']} | {100 * r['nme']:.2f} | {100 * r['fr']:.2f} | {r['auc']:.4f} |" for name, r in rows
        )
        extra = ""
        if self.uncertainty_error_pearson is not None:
            p = self.uncertainty_error_pearson
            extra = (f"\nPearson correlation of predicted uncertainty |Σ|^(1/4) and error: per landmark "
                     f"{p['pearson_per_landmark']:.3f}, per image {p['pearson_per_image']:.3f}\n")
            if "coverage_2sigma" in p:
                extra += (f"Reference points inside the predicted 1σ / 2σ ellipses: {100 * p['coverage_1sigma']:.1f} % / "
                          f"{100 * p['coverage_2sigma']:.1f} % (a calibrated Gaussian: 39.3 % / 86.5 %)\n")
        return head + table + "\n" + extra


_BOX_WORDS = {"annotation": "crops from the annotation boxes (tight box of the reference points)",
              "detector": "faces from the built-in detector, matched to the reference by box centre"}


def parse_data(data: str) -> tuple[str, str]:
    """``"name[/config]:split"`` → ``(name, split)`` (split defaults to ``test``)."""
    name, _, split = data.partition(":")
    if not name:
        raise InvalidArgumentError(f"--data must be TFDS_NAME[/CONFIG][:SPLIT]; got {data!r}")
    return name, split or "test"


def _stats(nmes, cutoff) -> dict:
    """NME over the faces found; FR and AUC count a face the detector missed (NME inf) as a failure."""
    from lmkzoo import metrics

    found = np.isfinite(nmes)
    out = {"num_faces": int(len(nmes)), "nme": float(np.nanmean(nmes[found])) if found.any() else float("nan"),
           "fr": float(metrics.failure_rate(np.where(found, nmes, 1e9), cutoff)),
           "auc": float(metrics.auc(np.where(found, nmes, 1e9), cutoff))}
    if not found.all():
        out["missed"] = int((~found).sum())
    return out


def _subsets(infos, nmes, pred, gt, vis, scheme, norm, boxes, cutoff) -> dict:
    from lmkzoo import metrics

    out = {}
    if "subset" in infos:
        labels = np.array([v.decode() if isinstance(v, bytes) else str(v) for v in infos["subset"]])
        for name in sorted(set(labels) - {""}):
            out[name] = _stats(nmes[labels == name], cutoff)
        if "source" in infos:
            # the parts of a subset that mixes sources (300-W common = HELEN test + LFPW test): "common/helen"
            sources = np.array([v.decode() if isinstance(v, bytes) else str(v) for v in infos["source"]])
            for name in sorted(set(labels) - {""}):
                parts = sorted(set(sources[labels == name]) - {""})
                for part in parts if len(parts) > 1 else ():
                    out[f"{name}/{part}"] = _stats(nmes[(labels == name) & (sources == part)], cutoff)
    for key in sorted(k for k in infos if k.startswith("attributes/")):
        mask = infos[key].astype(bool)
        if mask.any():
            out[key.split("/", 1)[1]] = _stats(nmes[mask], cutoff)
    if "category" in infos:
        cat = infos["category"].astype(int)
        for c, name in _300VW_CATEGORIES.items():
            if (cat == c).any():
                out[name] = _stats(nmes[cat == c], cutoff)
    if "frontal" in infos:
        mask = infos["frontal"].astype(bool)
        if mask.any():
            out["frontal"] = _stats(nmes[mask], cutoff)
    if "occluded" in infos and infos["occluded"].ndim == 2:
        occ = infos["occluded"].astype(bool) & vis & np.isfinite(nmes)[:, None]
        if occ.any():
            keep = occ.any(axis=1)
            e = metrics.nme(pred[keep], gt[keep], scheme=scheme, norm=norm, visible=occ[keep],
                            boxes=None if boxes is None else boxes[keep])
            out["occluded_points"] = _stats(e, cutoff)
    return out


def evaluate(model, data: str, *, data_dir=None, manual_dir=None, norm: str | None = None, cutoff: float | None = None,
             subsets: bool = True, flip_test: bool = False, batch_size: int = 32, out_dir=None, weights="pretrained",
             runtime: str = "keras", max_faces: int | None = None, boxes: str = "annotation") -> EvaluationReport:
    """Evaluate ``model`` (zoo name, ``.keras`` / ``.tflite`` / ``.onnx`` path, or a Landmarker) on ``data``.

    Args:
        data: ``"tfds_name[/config][:split]"``.
        norm, cutoff: override the dataset protocol (:data:`PROTOCOLS`).
        flip_test: average with the mirrored crop.
        out_dir: write ``report.json``, ``report.md`` and ``ced.png`` there.
        max_faces: evaluate the first N faces only (smoke tests).
        boxes: ``"annotation"`` (the papers' protocol: the tight box of the reference points is the face box, the
            model's own crop policy then applies) or ``"detector"`` (``predict``'s default path on the whole image:
            the built-in detector's box; each reference face takes the detection whose box centre lies inside its
            tight box; a missed face counts as a failure in FR and AUC and is left out of the NME mean).
    """
    import lmkzoo
    from lmkzoo import geometry, metrics
    from lmkzoo.data.pipeline import load_tfds
    from lmkzoo.inference.landmarker import Landmarker

    name, split = parse_data(data)
    if boxes not in _BOX_WORDS:
        raise InvalidArgumentError(f"boxes must be one of {sorted(_BOX_WORDS)}; got {boxes!r}")
    lm = model if isinstance(model, Landmarker) else (
        lmkzoo.load(model, runtime=runtime) if str(model).endswith((".keras", ".tflite", ".onnx"))
        else lmkzoo.load(model, weights=weights, runtime=runtime))
    base = name.split("/")[0]
    p_norm, p_cut = PROTOCOLS.get(base, ("inter_ocular", 0.10))
    norm, cutoff = norm or p_norm, float(cutoff or p_cut)

    from lmkzoo import schemes

    source = load_tfds(name, split, data_dir=data_dir, manual_dir=manual_dir)  # unknown names, configs, splits named
    if max_faces:
        source = source.take(int(max_faces))
    spec = lm.spec
    scheme = schemes.get(spec.scheme)
    aligned = spec.crop.get("policy", "box") in ("five_point", "five_point_hull")
    preds, gts, vis, covs, extra = [], [], [], [], {}
    t0 = time.perf_counter()

    def flush(batch):
        if boxes == "detector":
            pts, cv = zip(*(_detected(lm, ex["image"], ex["landmarks"], flip_test) for ex in batch))
            preds.append(np.stack(pts))
            if any(c is not None for c in cv):
                covs.append(np.stack([np.full((len(p), 2, 2), np.nan) if c is None else c for p, c in zip(pts, cv)]))
        else:
            images = [ex["image"] for ex in batch]
            faces = [[(ex["bbox"], ex.get("five_points", scheme.five_points(ex["landmarks"])) if aligned else None)]
                     for ex in batch]
            crops, affines, _, _ = lm.crop_faces(images, faces)  # the crops predict cuts (OpenCV), not a re-implementation
            out = lm.run_crops(crops, flip_test=flip_test)
            inv = geometry.invert_affine(np.stack(affines))
            preds.append(geometry.apply_affine(out["landmarks"].astype(np.float64), inv))
            if "covariance" in out:
                covs.append(geometry.transform_covariance(out["covariance"], inv))
        gts.append(np.stack([ex["landmarks"] for ex in batch]))
        vis.append(np.stack([ex["visible"] for ex in batch]).astype(bool))
        extra.setdefault("bbox", []).append(np.stack([ex["bbox"] for ex in batch]))
        for key in _EXTRA if subsets else ():
            if key not in batch[0]:
                continue
            if isinstance(batch[0][key], dict):  # WFLW's attributes: one flag per name
                for flag in batch[0][key]:
                    extra.setdefault(f"{key}/{flag}", []).append(np.array([ex[key][flag] for ex in batch]))
            else:
                extra.setdefault(key, []).append(np.array([ex[key] for ex in batch]))

    batch = []
    for ex in source.as_numpy_iterator():
        batch.append(ex)
        if len(batch) == batch_size:
            flush(batch)
            batch = []
    if batch:
        flush(batch)
    seconds = time.perf_counter() - t0
    if not preds:
        raise InvalidArgumentError(f"{data} has no examples")
    pred, gt, v = np.concatenate(preds), np.concatenate(gts).astype(np.float64), np.concatenate(vis)
    infos = {k: np.concatenate(vs) for k, vs in extra.items()}
    norm_boxes = infos.get("bbox") if norm == "bbox" else None
    found = np.all(np.isfinite(pred), axis=(1, 2))
    nmes = np.full(len(pred), np.inf)
    nmes[found] = metrics.nme(pred[found], gt[found], scheme=spec.scheme, norm=norm, visible=v[found],
                              boxes=None if norm_boxes is None else norm_boxes[found])
    s = _stats(nmes, cutoff)
    pearson = None
    if covs and found.any():
        from lmkzoo.metrics.uncertainty import uncertainty_error_correlation

        corr = uncertainty_error_correlation(pred[found], gt[found], np.concatenate(covs)[found], scheme=spec.scheme,
                                             norm=norm, boxes=None if norm_boxes is None else norm_boxes[found],
                                             visible=v[found])
        pearson = corr.as_dict()
        from lmkzoo.metrics.uncertainty import ellipse_coverage

        pearson.update(ellipse_coverage(pred[found], gt[found], np.concatenate(covs)[found], visible=v[found]))
    report = EvaluationReport(
        model=spec.name, runtime=lm.runtime, data=name, split=split, norm=norm, cutoff=cutoff, num_faces=s["num_faces"],
        nme=s["nme"], fr=s["fr"], auc=s["auc"],
        subsets=_subsets(infos, nmes, pred, gt, v, spec.scheme, norm, norm_boxes, cutoff) if subsets else {},
        seconds=seconds, uncertainty_error_pearson=pearson, boxes=boxes, faces_missed=int((~found).sum()),
        per_face_nme=[float(e) for e in nmes],
    )
    if out_dir is not None:
        report.files = _write(report, nmes, Path(out_dir))
    return report


def _detected(lm, image, reference, flip_test):
    """``predict`` on the whole image with the built-in detector: the points (and covariance) of the detection
    whose box centre lies inside the reference points' tight box (the closest one if several); NaN when none."""
    lo, hi = reference.min(0), reference.max(0)
    cands = [f for f in lm.predict(image, flip_test=flip_test)
             if np.all(lo <= (f.box[:2] + f.box[2:]) / 2) and np.all((f.box[:2] + f.box[2:]) / 2 <= hi)]
    if not cands:
        return np.full(reference.shape, np.nan), None
    best = min(cands, key=lambda f: float(np.abs(f.points - reference).mean()))
    return best.points.astype(np.float64), best.covariance


def _write(report: EvaluationReport, nmes, out: Path) -> dict:
    from lmkzoo import metrics

    out.mkdir(parents=True, exist_ok=True)
    files = {"json": str(out / "report.json"), "markdown": str(out / "report.md"), "ced": str(out / "ced.png")}
    fig = metrics.plot_ced({report.model: nmes}, report.cutoff, title=f"{report.data} [{report.split}]")
    fig.savefig(files["ced"], bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    d = report.to_dict()
    d["files"] = files
    d["per_face_nme"] = [e if np.isfinite(e) else None for e in report.per_face_nme]
    Path(files["json"]).write_text(json.dumps(d, indent=2))
    Path(files["markdown"]).write_text(report.markdown())
    return files
