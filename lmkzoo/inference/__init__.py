"""Inference: :mod:`~lmkzoo.inference.loader` (``load``: zoo names, files, runtimes), the
:class:`~lmkzoo.inference.landmarker.Landmarker` (predict, video tracking, export), ``evaluate`` (reports on a
dataset) and :mod:`~lmkzoo.inference.tracking` (the One Euro filter and frame readers).

Use the top-level names :func:`lmkzoo.load` and :func:`lmkzoo.evaluate`. Importing this package imports the
loader (which gives the Landmarker its five-point helper, the embedded default model) but neither TensorFlow nor
Keras.
"""

from lmkzoo.inference import loader as _loader  # noqa: F401  (sets Landmarker's five-point helper factory)
