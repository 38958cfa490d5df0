"""lmkzoo's TFDS builders. Importing this package registers them with ``tensorflow_datasets``.

Every builder yields one example per face with ``image``, ``landmarks`` (K, 2) float32 in lmkzoo's pixel
convention, ``visible`` (K,), ``bbox`` (x0, y0, x1, y1) and dataset-specific extras, and reads the original
archive layout from the manual-download folder.
"""

from datasets_tfds.landmark_folder import landmark_folder_dataset_builder  # noqa: F401
