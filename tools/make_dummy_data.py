"""Regenerate every builder's ``dummy_data/``: the real archive layouts and file formats, synthetic images.

    python tools/make_dummy_data.py            # all builders
    python tools/make_dummy_data.py wflw cofw  # some

Every face is drawn by :mod:`datasets_tfds._common.synthetic` (a mark at each landmark, at a pixel centre), and
each annotation file is written in its dataset's own coordinate convention from those lmkzoo-convention points,
so the builder tests can check that parsing + conversion puts every point back on its mark. Deterministic:
running it twice gives the same bytes (images are written by OpenCV at fixed quality, .mat files without
timestamps where the writer allows).
"""

from __future__ import annotations

import csv
import shutil
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from datasets_tfds._common.synthetic import draw_face, draw_marks, face_points, save_image, write_pts  # noqa: E402

DS = ROOT / "datasets_tfds"


def _face(scheme, size, box, seed):
    pts = face_points(scheme, box, jitter=0.6, seed=seed)
    return pts, draw_face(size, pts, scheme, seed=seed)


def _fresh(path: Path) -> Path:
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def _savemat(path, variables):
    """``scipy.io.savemat`` (MAT v5) with a fixed header text instead of the creation time, so reruns give
    identical bytes."""
    import scipy.io

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(str(path), variables)
    data = bytearray(path.read_bytes())
    data[:116] = b"MATLAB 5.0 MAT-file, Platform: posix, Created on: Mon Jan  1 00:00:00 2024".ljust(116, b" ")
    path.write_bytes(bytes(data))


def _fmt(v: float) -> str:
    return f"{v:.3f}".rstrip("0").rstrip(".")


# ------------------------------------------------------------------------------------------------- 300-W
def make_ibug_300w(out: Path):
    sets = [("afw", "1051618982_1.jpg", "afw"), ("helen/trainset", "100032540_1.jpg", "helen_trainset"),
            ("helen/testset", "2968560214_1.jpg", "helen_testset"), ("lfpw/trainset", "image_0001.png", "lfpw_trainset"),
            ("lfpw/testset", "image_0002.png", "lfpw_testset"), ("ibug", "image_003_1.jpg", "ibug"),
            ("300W/01_Indoor", "indoor_001.png", None), ("300W/02_Outdoor", "outdoor_001.png", None)]
    for k, (folder, name, boxes) in enumerate(sets):
        size = (72 + 4 * k, 70)
        box = (8 + k, 6, 64 + k, 62)
        pts, img = _face("ibug68", size, box, seed=100 + k)
        save_image(out / folder / name, img)
        write_pts(out / folder / (Path(name).stem + ".pts"), pts)
        if boxes:
            lo, hi = np.floor(pts.min(0)), np.ceil(pts.max(0))
            det = np.array([lo[0] - 2, lo[1] - 3, hi[0] + 1, hi[1] + 2])  # 1-based inclusive pixels
            entry = {"imgName": name, "bb_detector": det[None].astype(float),
                     "bb_ground_truth": np.array([[lo[0] + 1, lo[1] + 1, hi[0], hi[1]]], float)}
            cell = np.empty((1, 1), object)
            cell[0, 0] = entry
            (out / "Bounding Boxes").mkdir(exist_ok=True)
            _savemat(out / "Bounding Boxes" / f"bounding_boxes_{boxes}.mat", {"bounding_boxes": cell})


# ------------------------------------------------------------------------------------------------- WFLW
def make_wflw(out: Path):
    lists = out / "WFLW_annotations" / "list_98pt_rect_attr_train_test"
    lists.mkdir(parents=True)
    images = {
        "train": [("51--Dancing/51_Dancing_Dancing_51_1.jpg", 2), ("0--Parade/0_Parade_marchingband_1_5.jpg", 1)],
        "test": [("37--Soccer/37_Soccer_soccer_ball_37_45.jpg", 1)],
    }
    seed = 200
    for split, imgs in images.items():
        lines = []
        for rel, n_faces in imgs:
            w, h = 96 * n_faces, 92
            canvas = None
            for f in range(n_faces):
                seed += 1
                pts, img = _face("wflw98", (w, h), (6 + 96 * f, 6, 88 + 96 * f, 86), seed)
                canvas = img if canvas is None else np.where(np.arange(w)[None, :, None] >= 96 * f, img, canvas)
                file_pts = pts - 0.5  # WFLW: 0-based pixel centres
                lo, hi = np.floor(pts.min(0)), np.ceil(pts.max(0)) - 1  # first / last pixel, 0-based inclusive
                attrs = [(seed + j) % 2 for j in range(6)]
                cols = [_fmt(v) for v in file_pts.reshape(-1)] + [str(int(v)) for v in (lo[0], lo[1], hi[0], hi[1])]
                lines.append(" ".join(cols + [str(a) for a in attrs] + [rel]))
            save_image(out / "WFLW_images" / rel, canvas)
        (lists / f"list_98pt_rect_attr_{split}.txt").write_text("\n".join(lines) + "\n")


# ------------------------------------------------------------------------------------------------- COFW
def _write_mat73(path: Path, variables: dict):
    """A MATLAB v7.3 file as MATLAB writes it: 512-byte user block with the text header, column-major arrays
    (axes reversed in HDF5), cell arrays as object references into '#refs#'."""
    import h5py

    path.parent.mkdir(parents=True, exist_ok=True)
    fcpl = h5py.h5p.create(h5py.h5p.FILE_CREATE)
    fcpl.set_userblock(512)
    fcpl.set_obj_track_times(False)  # no timestamps on the root group: reruns give identical bytes
    with h5py.File(h5py.h5f.create(str(path).encode(), h5py.h5f.ACC_TRUNC, fcpl=fcpl)) as f:
        gcpl = h5py.h5p.create(h5py.h5p.GROUP_CREATE)
        gcpl.set_obj_track_times(False)  # no timestamps: reruns give identical bytes
        refs = h5py.Group(h5py.h5g.create(f.id, b"#refs#", gcpl=gcpl))
        counter = [0]

        def put(name, value, group):
            if isinstance(value, np.ndarray) and value.dtype == object:
                ref_arr = np.empty(value.shape[::-1], dtype=h5py.ref_dtype)
                for idx in np.ndindex(value.shape):
                    counter[0] += 1
                    ds = put(f"r{counter[0]}", value[idx], refs)
                    ref_arr[idx[::-1]] = ds.ref
                ds = group.create_dataset(name, data=ref_arr, dtype=h5py.ref_dtype, track_times=False)
                ds.attrs["MATLAB_class"] = np.bytes_("cell")
                return ds
            a = np.asarray(value)
            if a.ndim < 2:
                a = a.reshape(1, -1) if a.ndim == 1 else a.reshape(1, 1)
            ds = group.create_dataset(name, data=a.T, track_times=False)
            ds.attrs["MATLAB_class"] = np.bytes_({"uint8": "uint8", "float64": "double", "bool": "logical"}[a.dtype.name])
            return ds

        for name, value in variables.items():
            put(name, value, f)
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 ."
    with path.open("r+b") as fh:
        fh.write(header.ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02IM")


def _cofw_faces(n, seed0, grey_first, with68=False):
    """COFW faces; ``with68``: each image also carries the marks of a 68-point face on its right half (the
    COFW-68 annotations of the same test images)."""
    images, phis, boxes, pts68 = [], [], [], []
    for i in range(n):
        w, h = (80 + 6 * i) * (2 if with68 else 1), 78
        pts, img = _face("cofw29", (w, h), (8, 8, 72, 70), seed0 + i)
        if with68:
            p68 = face_points("ibug68", (w // 2 + 4, 6, w - 6, 74), jitter=0.6, seed=seed0 + 50 + i)
            img = draw_marks(img, p68, "ibug68")
            pts68.append(p68)
        if grey_first and i == 0:
            img = img.mean(-1).round().astype(np.uint8)
        occ = np.array([(j + i) % 3 == 0 for j in range(29)], float)
        file_pts = pts + 0.5  # MATLAB 1-based
        phis.append(np.concatenate([file_pts[:, 0], file_pts[:, 1], occ]))
        lo, hi = np.floor(pts.min(0)), np.ceil(pts.max(0)) - 1  # 0-based first/last pixel
        boxes.append([lo[0] + 1, lo[1] + 1, hi[0] - lo[0] + 1, hi[1] - lo[1] + 1])  # 1-based x, y, w, h
        images.append(img)
    cell = np.empty((n, 1), object)
    for i, im in enumerate(images):
        cell[i, 0] = im
    return cell, np.array(phis), np.array(boxes, float), pts68


def make_cofw(out: Path):
    for split, (iv, pv, bv), n, seed in (("train", ("IsTr", "phisTr", "bboxesTr"), 2, 300),
                                         ("test", ("IsT", "phisT", "bboxesT"), 2, 310)):
        cell, phis, boxes, p68 = _cofw_faces(n, seed, grey_first=True, with68=split == "test")
        _write_mat73(out / f"COFW_{split}_color.mat", {iv: cell, pv: phis, bv: boxes})
    # COFW-68: the 68-point re-annotation of the test images (MAT v5 files, as the cofw68-benchmark repository has them)
    ann = out / "cofw68_test_annotations"
    ann.mkdir()
    bboxes = []
    for i, pts in enumerate(p68):
        occ = np.array([(j + i) % 5 == 0 for j in range(68)], np.uint8)
        _savemat(ann / f"{i + 1}_points.mat", {"Points": pts.astype(float) + 0.5, "Occ": occ[:, None]})
        lo, hi = np.floor(pts.min(0)), np.ceil(pts.max(0)) - 1
        bboxes.append([lo[0] + 1, lo[1] + 1, hi[0] - lo[0] + 1, hi[1] - lo[1] + 1])
    _savemat(out / "cofw68_test_bboxes.mat", {"bboxes": np.array(bboxes, float)})


def make_cofw_mat_v5(out: Path):
    """The same layout in older MAT files (scipy, v5) under the grey release's names."""
    for split, (iv, pv, bv), n, seed in (("train", ("IsTr", "phisTr", "bboxesTr"), 2, 300),
                                         ("test", ("IsT", "phisT", "bboxesT"), 1, 330)):
        cell, phis, boxes, _ = _cofw_faces(n, seed, grey_first=False)
        _savemat(out / f"COFW_{split}.mat", {iv: cell, pv: phis, bv: boxes})


# ------------------------------------------------------------------------------------------------- AFLW-19
def make_aflw19(out: Path):
    names = ["0/image00002.jpg", "2/image00004.jpg", "3/image00006.jpg", "3/image00010.jpg", "0/image00013.jpg"]
    data, boxes, masks = [], [], []
    for i, rel in enumerate(names):
        pts, img = _face("aflw19", (84, 80), (6 + i, 6, 78 - i, 74), 400 + i)
        save_image(out / "data" / "flickr" / rel, img)
        fp = pts + 0.5  # MATLAB 1-based
        data.append(np.concatenate([fp[:, 0], fp[:, 1]]))
        lo, hi = np.floor(pts.min(0)) + 1, np.ceil(pts.max(0))  # 1-based first / last pixel
        boxes.append([lo[0], hi[0], lo[1], hi[1]])  # AFLW order: xmin, xmax, ymin, ymax
        mask = np.ones(19)
        if i in (1, 4):
            mask[[0, 12]] = 0
        masks.append(mask)
    names_cell = np.empty((len(names), 1), object)
    for i, n in enumerate(names):
        names_cell[i, 0] = n
    ra = np.array([[3, 1, 5, 2, 4]], float)  # 1-based permutation: train = rows 3, 1, 5 (num_train 3), test = 2, 4
    _savemat(out / "AFLWinfo_release.mat", {
        "bbox": np.array(boxes, float), "data": np.array(data), "mask_new": np.array(masks), "nameList": names_cell,
        "ra": ra})


# ------------------------------------------------------------------------------------------------- JD-landmark
def _jd_entry(base: Path, name: str, seed: int, rect_folder: str | None):
    pts, img = _face("jd106", (100, 96), (6, 6, 94, 90), seed)
    save_image(base / "picture" / name, img)
    (base / "landmark").mkdir(parents=True, exist_ok=True)
    file_pts = pts - 0.5  # 0-based pixel centres
    (base / "landmark" / f"{name}.txt").write_text("106\n" + "".join(f"{_fmt(x)} {_fmt(y)}\n" for x, y in file_pts))
    if rect_folder:
        lo, hi = np.floor(pts.min(0)).astype(int), (np.ceil(pts.max(0)) - 1).astype(int)
        (base / rect_folder).mkdir(parents=True, exist_ok=True)
        (base / rect_folder / f"{name}.rect").write_text(f"{lo[0]} {lo[1]} {hi[0]} {hi[1]}\n")


def make_jd_landmark(out: Path):
    for folder, seed in (("JD-landmark", 500), ("JD-landmark-v2", 550)):
        r = out / folder
        _jd_entry(r / "Training_data" / "AFW", "AFW_1051618982_1_0.jpg", seed, None)
        _jd_entry(r / "Training_data" / "HELEN", "HELEN_100032540_1_0.jpg", seed + 1, "bbox")
        _jd_entry(r / "Training_data" / "IBUG", "IBUG_image_003_1_0.jpg", seed + 2, None)
        _jd_entry(r / "Validation_data", "000001.jpg", seed + 3, "rect")
        _jd_entry(r / "Test_data", "000002.jpg", seed + 4, "rect")
        if folder.endswith("v2"):
            _jd_entry(r / "Training_data" / "LFPW", "LFPW_image_train_0001_0.jpg", seed + 5, None)


# ------------------------------------------------------------------------------------------------- Menpo
def make_menpo2d(out: Path):
    items = [("trainset", "aflw__face_39880.jpg", "ibug68"), ("trainset", "aflw__face_40004.jpg", "menpo39"),
             ("trainset", "ibug__image_012.png", "ibug68"), ("testset", "image_00001.jpg", "ibug68"),
             ("testset", "image_00002.jpg", "menpo39")]
    for i, (folder, name, scheme) in enumerate(items):
        pts, img = _face(scheme, (80, 84), (8, 8, 72, 78), 600 + i)
        save_image(out / folder / name, img)
        write_pts(out / folder / (Path(name).stem + ".pts"), pts)


# ------------------------------------------------------------------------------------------------- 300VW
def make_ibug_300vw(out: Path, num_frames: int = 6):
    import cv2

    root = out / "300VW_Dataset_2015_12_14"
    for k, vid in enumerate(("001", "114", "203", "410")):
        d = root / vid
        (d / "annot").mkdir(parents=True)
        size = (96, 88)
        writer = cv2.VideoWriter(str(d / "vid.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, size)
        if not writer.isOpened():
            raise RuntimeError("OpenCV cannot write MJPG .avi files")
        for n in range(1, num_frames + 1):
            shift = 2 * (n - 1)  # the face moves 2 px per frame, so frames and annotations must pair up
            pts, img = _face("ibug68", size, (8 + shift, 8, 80 + shift, 84), 700 + 10 * k + n)
            writer.write(np.ascontiguousarray(img[..., ::-1]))
            write_pts(d / "annot" / f"{n:06d}.pts", pts)
        writer.release()


# ------------------------------------------------------------------------------------------------- unlabelled
def make_face_image_folder(out: Path):
    for i, rel in enumerate(["lfw/Aaron_Eckhart/Aaron_Eckhart_0001.jpg", "lfw/Abba_Eban/Abba_Eban_0001.jpg"]):
        _, img = _face("ibug68", (64, 64), (8, 10, 56, 60), 800 + i)
        save_image(out / rel, img)
    for i in range(3):
        _, img = _face("ibug68", (56, 68), (6, 12, 50, 64), 810 + i)
        save_image(out / "img_align_celeba" / f"{i + 1:06d}.jpg", img)
    (out / "list_eval_partition.txt").write_text("000001.jpg 0\n000002.jpg 1\n000003.jpg 2\n")
    (out / "boxes.csv").write_text("image,x0,y0,x1,y1\nlfw/Abba_Eban/Abba_Eban_0001.jpg,8,10,56,60\n")


# ------------------------------------------------------------------------------------------------- landmark_folder
def make_landmark_folder(out: Path):
    # pts68: images with .pts beside them (two faces in one image as img_0.pts / img_1.pts)
    pts, img = _face("ibug68", (80, 76), (6, 6, 74, 72), 900)
    save_image(out / "pts" / "a.jpg", img)
    write_pts(out / "pts" / "a.pts", pts)
    p0 = face_points("ibug68", (4, 6, 60, 66), jitter=0.6, seed=901)
    p1 = face_points("ibug68", (68, 6, 124, 66), jitter=0.6, seed=902)
    both = np.maximum(draw_face((128, 72), p0, "ibug68", seed=901), draw_face((128, 72), p1, "ibug68", seed=902))
    save_image(out / "pts" / "group" / "b.png", both)
    write_pts(out / "pts" / "group" / "b_0.pts", p0)
    write_pts(out / "pts" / "group" / "b_1.pts", p1)
    # lfw_teacher68: <Person>/<file>.jpg + teacher68.csv (lmkzoo convention), 3 people
    rows = []
    for i, (person, n) in enumerate((("Aaron_Eckhart", 1), ("Abba_Eban", 2), ("Zico", 1))):
        for j in range(n):
            pts, img = _face("ibug68", (64, 64), (6, 8, 58, 60), 910 + 3 * i + j)
            rel = f"{person}/{person}_{j + 1:04d}.jpg"
            save_image(out / rel, img)
            rows.append([rel] + [_fmt(v) for v in pts.reshape(-1)])
    with (out / "teacher68.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image"] + [f"{a}{i}" for i in range(68) for a in "xy"])
        w.writerows(rows)
    # dlib_faces68: imglab XMLs (0-based pixel-centre parts, boxes left/top/width/height)
    for split, seeds in (("training", (920, 921)), ("testing", (922,))):
        parts = []
        for s in seeds:
            pts, img = _face("ibug68", (72, 72), (6, 6, 66, 66), s)
            name = f"dlib/{split}_{s}.jpg"
            save_image(out / name, img)
            lo, hi = np.floor(pts.min(0)).astype(int), np.ceil(pts.max(0)).astype(int)
            xml_parts = "".join(f"      <part name='{k:02d}' x='{int(x - 0.5)}' y='{int(y - 0.5)}'/>\n"
                                for k, (x, y) in enumerate(pts))
            parts.append(f"  <image file='{name}'>\n    <box top='{lo[1]}' left='{lo[0]}' width='{hi[0] - lo[0]}' "
                         f"height='{hi[1] - lo[1]}'>\n{xml_parts}    </box>\n  </image>\n")
        (out / f"{split}_with_face_landmarks.xml").write_text(
            "<?xml version='1.0' encoding='ISO-8859-1'?>\n<dataset>\n<name>dummy</name>\n<images>\n"
            + "".join(parts) + "</images>\n</dataset>\n")


MAKERS = {
    "ibug_300w": make_ibug_300w, "wflw": make_wflw, "cofw": make_cofw, "aflw19": make_aflw19,
    "jd_landmark": make_jd_landmark, "menpo2d": make_menpo2d, "ibug_300vw": make_ibug_300vw,
    "face_image_folder": make_face_image_folder, "landmark_folder": make_landmark_folder,
}


def main(names=None):
    for name in names or MAKERS:
        MAKERS[name](_fresh(DS / name / "dummy_data"))
        if name == "cofw":
            make_cofw_mat_v5(_fresh(DS / name / "dummy_data_mat_v5"))
        print("wrote", DS / name / "dummy_data")


if __name__ == "__main__":
    main(sys.argv[1:])
