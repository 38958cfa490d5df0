"""``StructuredLoss``: the base of the losses that read a network's whole output dict and the codec's whole target
dict (``PIPLoss``, ``HeatmapMSE``, ``LaplaceKL``, ...); :class:`~lmkzoo.models.network.LandmarkNetwork` passes the
dicts through to them unchanged."""

from __future__ import annotations

import keras

__all__ = ["StructuredLoss"]


class StructuredLoss(keras.losses.Loss):
    """A loss over the network's whole output dict and the codec's whole target dict.

    ``call(y_true: dict, y_pred: dict) -> (B,)`` per-example loss. :class:`LandmarkNetwork` passes the
    dicts through unchanged (Keras' CompileLoss would otherwise split them per output).
    """

    def __call__(self, y_true, y_pred, sample_weight=None):
        from keras import ops

        per_example = self.call(y_true, y_pred)
        if sample_weight is not None:
            sw = ops.cast(sample_weight, per_example.dtype)
            value = ops.sum(per_example * sw) / ops.maximum(ops.sum(sw), 1e-12)
        else:
            value = ops.mean(per_example)
        return _scale_for_replicas(value)


def _scale_for_replicas(value):
    """Divide by the replica count under a ``tf.distribute`` strategy (as Keras' own losses do), so summing
    the replicas' gradients gives the gradient of the global-batch mean."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf  # only under the TF backend, for its distribution strategies

        n = tf.distribute.get_strategy().num_replicas_in_sync
        if n > 1:
            value = value / n
    return value
