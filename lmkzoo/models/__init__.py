"""Networks (keras.ops only; no TensorFlow imports in this package)."""
