"""``LandmarkNetwork``: the base of every family's network (normalised crop → raw outputs).

A functional ``keras.Model`` subclass (keras-hub style: the graph is built in ``__init__``, ``get_config``
returns the constructor arguments, ``from_config`` rebuilds it). It carries its family's codec, so the
decode configuration (grids, neighbour tables) travels with the network and its ``.keras`` files, and it
trains with *structured* losses (losses that read the whole output dict, like ``PIPLoss``) through an
overridden ``compute_loss``.
"""

from __future__ import annotations

import keras

from lmkzoo.losses.base import StructuredLoss

__all__ = ["LandmarkNetwork"]


def _logs_for_multi_worker(logs):
    """Under ``MultiWorkerMirroredStrategy`` Keras (TF backend) reduces each step's logs across workers with
    ``strategy.reduce(MEAN, v, axis=0)``, which fails on scalars (keras-team/keras#20585): give each scalar a
    length-1 axis there, so the cross-worker mean is a scalar again. Elsewhere the logs are unchanged."""
    if keras.backend.backend() != "tensorflow":
        return logs
    import tensorflow as tf

    strategy = tf.distribute.get_strategy()
    multi_worker = isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and getattr(
        strategy.extended, "_num_workers", 1) > 1
    if not multi_worker:
        return logs
    return {k: keras.ops.reshape(v, (1,)) if len(keras.ops.shape(v)) == 0 else v for k, v in logs.items()}


class LandmarkNetwork(keras.Model):
    """Base class of family networks. Subclasses build the graph and call :meth:`_finish`."""

    def _finish(self, inputs, outputs, *, codec, **kwargs):
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self.codec = codec
        #: the zoo spec (as a dict) the network was built for: input contract, scheme, crop policy; stored in
        #: the config so a ``.keras`` file carries its preprocessing
        self.zoo_spec = None

    @staticmethod
    def preset_backbone_args(backbone: str, backbone_args) -> dict:
        """The backbone's constructor arguments for a zoo ``builder`` (families that fix some, such as the
        paper's feature layer, override this)."""
        return dict(backbone_args or {})

    @classmethod
    def from_preset_args(cls, *, backbone: str, codec, backbone_args=None, **kwargs):
        """Build from a backbone name (zoo.yaml ``builder`` style) and the family's codec."""
        from lmkzoo.models.backbones import get_backbone

        w, h = codec.input_size
        bb = get_backbone(backbone, input_shape=(h, w, 3), **cls.preset_backbone_args(backbone, backbone_args))
        return cls(backbone=bb, codec=codec, **kwargs)

    @property
    def num_points(self) -> int:
        return self.codec.num_points

    @property
    def input_size(self) -> tuple[int, int]:
        return self.codec.input_size

    def decode(self, outputs):
        """Raw outputs → ``{"landmarks" (B, K, 2) crop pixels, "scores" (B, K), ...}`` (the codec's decode)."""
        return self.codec(outputs)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        loss_fn = getattr(self, "loss", None)
        if isinstance(loss_fn, StructuredLoss):
            total = loss_fn(y, y_pred, sample_weight)
            for extra in self.losses:
                total = total + self._aggregate_additional_loss(extra)
            return total
        return super().compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=training)

    def train_step(self, data):
        return _logs_for_multi_worker(super().train_step(data))

    def test_step(self, data):
        return _logs_for_multi_worker(super().test_step(data))

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        """Keras (TF backend) builds a distributed model from the first batch, which it first reduces with
        ``strategy.reduce(MEAN)``; ``MultiWorkerMirroredStrategy`` cannot reduce a nested batch such as our
        target dicts (keras-team/keras#20329, #20585). The build only needs shapes and dtypes, so take the
        first local replica's batch instead of a cross-worker mean."""
        strategy = getattr(self, "_distribute_strategy", None)
        if strategy is None or iterator is None or keras.backend.backend() != "tensorflow":
            return super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)
        import tensorflow as tf

        for _, _, it in iterator:
            batch = next(it)
            break
        batch = keras.tree.map_structure(
            lambda v: strategy.experimental_local_results(v)[0] if isinstance(v, tf.distribute.DistributedValues) else v,
            batch,
        )
        with strategy.scope():
            self._symbolic_build(data_batch=batch)

    @classmethod
    def from_config(cls, config):
        import lmkzoo.codecs  # noqa: F401  (registers every codec class a network config may name)

        config = dict(config)
        zoo_spec = config.pop("zoo_spec", None)
        for key in ("backbone", "codec"):
            if isinstance(config.get(key), dict):
                config[key] = keras.saving.deserialize_keras_object(config[key])
        network = cls(**config)
        network.zoo_spec = zoo_spec
        return network

    def _base_config(self) -> dict:
        return {
            "codec": keras.saving.serialize_keras_object(self.codec),
            "zoo_spec": self.zoo_spec,
            "name": self.name,
            "trainable": self.trainable,
        }
