"""Training and evaluation data in tf.data: ``pipeline`` (examples → crop → augment → codec targets → batches),
``transforms`` (the TensorFlow ops: one affine for image and points, photometric augmentations), ``presets`` (each
paper's augmentation recipe as data), ``unlabeled`` (unlabelled faces for semi-supervised training) and ``show``
(``lmkzoo data show``).

This package imports nothing itself: TensorFlow loads when one of its modules is used.
"""
