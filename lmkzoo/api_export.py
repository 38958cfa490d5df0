"""``@lmkzoo_export``: one decorator that makes a class Keras-serializable under the ``lmkzoo>`` package.

Every layer, loss and model class of lmkzoo carries it, so ``.keras`` files written by lmkzoo load back with
``keras.saving.load_model`` once ``lmkzoo`` is imported, with no ``custom_objects``.
"""

from __future__ import annotations

import keras

__all__ = ["lmkzoo_export"]


def lmkzoo_export(cls):
    """Register ``cls`` as ``lmkzoo>ClassName`` for Keras serialization and return it unchanged."""
    return keras.saving.register_keras_serializable(package="lmkzoo", name=cls.__name__)(cls)
