"""lmkzoo's TFDS builders. Importing this package registers them with ``tensorflow_datasets``.

Every landmark builder yields one example per face with ``image``, ``landmarks`` (K, 2) float32 in lmkzoo's pixel
convention, ``visible`` (K,), ``bbox`` (x0, y0, x1, y1) and dataset-specific extras, and reads the original
archive layout from the manual-download folder (``tfds.download.DownloadConfig(manual_dir=...)``).
``face_image_folder`` yields unlabelled images (``image``, ``image/filename``, ``bbox``).
"""

from datasets_tfds.aflw19 import aflw19_dataset_builder  # noqa: F401
from datasets_tfds.cofw import cofw_dataset_builder  # noqa: F401
from datasets_tfds.face_image_folder import face_image_folder_dataset_builder  # noqa: F401
from datasets_tfds.ibug_300vw import ibug_300vw_dataset_builder  # noqa: F401
from datasets_tfds.ibug_300w import ibug_300w_dataset_builder  # noqa: F401
from datasets_tfds.jd_landmark import jd_landmark_dataset_builder  # noqa: F401
from datasets_tfds.landmark_folder import landmark_folder_dataset_builder  # noqa: F401
from datasets_tfds.menpo2d import menpo2d_dataset_builder  # noqa: F401
from datasets_tfds.wflw import wflw_dataset_builder  # noqa: F401

BUILDERS = ("aflw19", "cofw", "face_image_folder", "ibug_300vw", "ibug_300w", "jd_landmark", "landmark_folder",
            "menpo2d", "wflw")
