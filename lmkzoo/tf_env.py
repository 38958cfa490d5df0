"""TensorFlow process settings that lmkzoo's own entry point (the ``lmkzoo`` command) applies before
TensorFlow starts. Programs that import lmkzoo as a library keep their own settings: set these variables yourself,
before TensorFlow's first operation, to get the same speed (docs/training_300w.md, "Compute on this machine").

``TF_CPU_ALLOCATOR_USE_BFC=true``: TensorFlow's CPU tensors come from its pooling BFC allocator instead of ``malloc``.
With ``malloc``, every activation over glibc's 32 MB mmap threshold is a fresh ``mmap`` that the kernel zeroes page
by page and ``munmap`` returns at once, step after step: on the 2-core machine this project trains on, half the CPU
time of a PIPNet-MobileNetV2 training step at 256 px and batch 16 went to the kernel (``top``: 50 % sy), and the step
ran at 4.4 images/s; with the pool, 8.8 images/s (``lmkzoo bench pipnet_mnv2.300w``, training-step rate). Tiny
networks (the test suite's) do not gain: their activations stay under the threshold.
"""

from __future__ import annotations

import os

__all__ = ["TF_PROCESS_SETTINGS", "apply_tf_process_settings"]

#: environment variables read by TensorFlow when it starts, and lmkzoo's values
TF_PROCESS_SETTINGS = {"TF_CPU_ALLOCATOR_USE_BFC": "true"}


def apply_tf_process_settings() -> None:
    """Set :data:`TF_PROCESS_SETTINGS` in ``os.environ`` where the caller has not set them (effective only before
    TensorFlow allocates its first tensor)."""
    for key, value in TF_PROCESS_SETTINGS.items():
        os.environ.setdefault(key, value)
