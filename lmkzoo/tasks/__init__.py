"""Tasks on top of the models: loading (``loader``), inference (``landmarker``), the family factories
(``families`` and one ``<family>_family`` module each), training (``train``; ``stc`` and ``laplacekl_trainer`` for
the self-training and adversarial recipes; ``optimizers``) and evaluation (``evaluate``).

Use the top-level names: :func:`lmkzoo.load`, :func:`lmkzoo.train`, :func:`lmkzoo.evaluate`. This package
imports nothing itself (no TensorFlow or Keras until one of its modules is used).
"""
