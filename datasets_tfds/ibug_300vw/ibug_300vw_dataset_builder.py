"""``ibug_300vw``: the 300 Videos in the Wild benchmark (iBUG 68 points per frame).

Frames are decoded from each ``vid.avi`` with OpenCV and paired with ``annot/<frame>.pts`` (6-digit, 1-based
frame numbers). A config keeps every Nth frame (frames 1, 1 + N, 1 + 2N, ...). Splits: ``train`` (the 50
training videos) and ``test_category1/2/3`` (31 / 19 / 14 videos: well lit, unconstrained lighting,
completely unconstrained), with the official category lists.

Broken frames: the real videos have known broken frames (docs/reference_facts.md §F; mmpose's 300vw2coco.py keeps a
per-video list and skips them, and skips frames it could not extract). By default an annotated frame that OpenCV
cannot decode (a video that ends early, a frame that does not decode) is skipped and listed in one logged
warning per video; ``skip_undecodable_frames=False`` restores the strict behaviour (the build stops with a
:class:`~lmkzoo.errors.DatasetFormatError` naming the video and the frame).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds

from datasets_tfds._common.base import Face, LandmarkBuilder, check_points, relpath
from datasets_tfds._common.parsers import read_pts, tight_box
from lmkzoo.errors import DatasetFormatError


def _ids(*parts) -> frozenset:
    out = []
    for p in parts:
        out += list(range(p[0], p[1] + 1)) if isinstance(p, tuple) else [p]
    return frozenset(f"{v:03d}" for v in out)


CATEGORIES = {
    1: _ids(114, 124, 125, 126, 150, 158, 401, 402, (505, 511), 514, 515, (518, 522), 524, 525, 537, 538, 540, 541,
            (546, 548)),
    2: _ids(203, 208, (211, 214), 218, 224, (403, 409), 412, 550, 551, 553),
    3: _ids(410, 411, 516, 517, 526, (528, 531), 533, (557, 559), 562),
}
DATASET_FOLDER = "300VW_Dataset_2015_12_14"

log = logging.getLogger("datasets_tfds.ibug_300vw")


@dataclasses.dataclass
class Vw300Config(tfds.core.BuilderConfig):
    """``frame_step``: keep frames 1, 1 + step, 1 + 2 step, ... of every video.

    ``skip_undecodable_frames``: skip annotated frames OpenCV cannot decode, with a logged warning listing them
    (default, as the reference converters do with 300VW's broken frames); ``False``: stop the build instead.
    """

    frame_step: int = 1
    skip_undecodable_frames: bool = True


@dataclasses.dataclass
class _Video:
    vid: str
    category: int
    path: Path
    frames: list  # [(frame number, points (68, 2), pts file)]


class Builder(LandmarkBuilder):
    """300VW: one example per kept annotated frame."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    SCHEME = "ibug68"
    IMAGE_ENCODING = "jpeg"
    HOMEPAGE = "https://ibug.doc.ic.ac.uk/resources/300-VW/"
    BUILDER_CONFIGS = [
        Vw300Config(name="step1", description="Every annotated frame (about 218k).", frame_step=1),
        Vw300Config(name="step5", description="Every 5th frame.", frame_step=5),
        Vw300Config(name="step25", description="Every 25th frame (about one per second).", frame_step=25),
    ]
    DEFAULT_CONFIG_NAME = "step5"
    MANUAL_DOWNLOAD_INSTRUCTIONS = """
    Download 300VW_Dataset_2015_12_14.zip from https://ibug.doc.ic.ac.uk/resources/300-VW/ and extract it into
    `manual_dir`, which then holds (the video folders may also sit directly in `manual_dir`):
      300VW_Dataset_2015_12_14/<video id, e.g. 001>/vid.avi
      300VW_Dataset_2015_12_14/<video id>/annot/000001.pts, 000002.pts, ...    (1-based frame numbers)
    Videos 114, 124, ... (category 1), 203, 208, ... (category 2) and 410, 411, ... (category 3) form the test
    splits; every other video is training data.
    """

    def _extra_features(self) -> dict:
        return {"video_id": tfds.features.Text(), "frame_index": np.int32, "category": np.int32}

    def _split_generators(self, dl_manager):
        manual = Path(dl_manager.manual_dir)
        root = manual / DATASET_FOLDER if (manual / DATASET_FOLDER).is_dir() else manual
        videos = self._read(root, manual)
        splits = {"train": [v for v in videos if v.category == 0]}
        for c in (1, 2, 3):
            splits[f"test_category{c}"] = [v for v in videos if v.category == c]
        return {name: self._generate_examples(vs) for name, vs in splits.items()}

    def _read(self, root: Path, manual: Path) -> list[_Video]:
        step = int(self.builder_config.frame_step)
        if step < 1:
            raise DatasetFormatError(f"frame_step must be >= 1; got {step}")
        vids = sorted(p for p in root.iterdir() if p.is_dir() and (p / "annot").is_dir())
        if not vids:
            raise DatasetFormatError("no <video id>/annot folders (see MANUAL_DOWNLOAD_INSTRUCTIONS)", path=root)
        out = []
        for d in vids:
            video = d / "vid.avi"
            if not video.is_file():
                raise DatasetFormatError("vid.avi is missing", path=video)
            frames = []
            for pts_file in sorted((d / "annot").glob("*.pts")):
                try:
                    n = int(pts_file.stem)
                except ValueError:
                    raise DatasetFormatError("annotation names must be 1-based frame numbers (000001.pts)",
                                             path=pts_file) from None
                if n < 1:
                    raise DatasetFormatError("frame numbers start at 1", path=pts_file)
                if (n - 1) % step == 0:
                    frames.append((n, check_points(read_pts(pts_file, 68), 68, path=pts_file), pts_file))
            if not frames:
                raise DatasetFormatError("no annotations for the kept frames", path=d / "annot")
            category = next((c for c, ids in CATEGORIES.items() if d.name in ids), 0)
            out.append(_Video(d.name, category, video, frames))
        self._manual = manual
        return out

    def _generate_examples(self, videos):
        import cv2

        lenient = bool(self.builder_config.skip_undecodable_frames)
        for v in videos:
            wanted = {n: (pts, f) for n, pts, f in v.frames}
            last = max(wanted)
            cap = cv2.VideoCapture(str(v.path))
            if not cap.isOpened():
                raise DatasetFormatError("OpenCV cannot open the video", path=v.path)
            skipped: list[int] = []
            try:
                n = 0
                while n < last:
                    ok = cap.grab()
                    n += 1
                    if not ok:
                        if not lenient:
                            raise DatasetFormatError(
                                f"the video ends after {n - 1} frames but frame {last} is annotated", path=v.path)
                        skipped += [m for m in sorted(wanted) if m >= n]
                        break
                    if n not in wanted:
                        continue
                    ok, frame = cap.retrieve()
                    if not ok or frame is None:
                        if not lenient:
                            raise DatasetFormatError(f"cannot decode frame {n}", path=v.path)
                        skipped.append(n)
                        continue
                    pts, pts_file = wanted[n]
                    face = Face(key=f"{v.vid}/{n:06d}", image=np.ascontiguousarray(frame[..., ::-1]),
                                filename=f"{relpath(v.path, self._manual)}#{n:06d}", landmarks=pts,
                                bbox=tight_box(pts),
                                extras={"video_id": v.vid, "frame_index": n, "category": v.category},
                                source=(pts_file, None))
                    yield face.key, face.example()
            finally:
                cap.release()
            if skipped:
                log.warning("ibug_300vw: video %s (%s): skipped %d annotated frame(s) that OpenCV cannot decode: %s",
                            v.vid, v.path, len(skipped), skipped)
