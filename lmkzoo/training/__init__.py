"""Training: :func:`~lmkzoo.training.train.train` dispatches a zoo recipe to its trainer (supervised, self-training
with curriculum, adversarial); :mod:`~lmkzoo.training.run` is the one run folder they share (config, callbacks,
resume, final files, history); :mod:`~lmkzoo.training.publish` turns a finished run into a weights release.

Use the top-level name :func:`lmkzoo.train`. This package imports nothing itself (no TensorFlow or Keras until
one of its modules is used).
"""
