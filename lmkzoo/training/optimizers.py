"""Optimizers that reproduce the papers' PyTorch recipes.

PyTorch's ``torch.optim.Adam(params, lr, weight_decay=wd)`` implements weight decay as an L2 term *coupled*
to the gradient: ``g ← g + wd · θ`` before the moments are updated, so the decay is rescaled by Adam's
per-parameter step size. Keras' ``AdamW`` (and ``Adam(weight_decay=...)``) applies *decoupled* decay
instead (``θ ← θ − lr · wd · θ``, Loshchilov & Hutter). The two differ by orders of magnitude for small
gradients, so a recipe written as ``{name: adam, weight_decay: wd}`` (PyTorch ``Adam``) uses
:class:`AdamL2`; ``{name: adamw, ...}`` keeps Keras' decoupled ``AdamW``.
"""

from __future__ import annotations

import math

import keras
from keras import ops

from lmkzoo.api_export import lmkzoo_export
from lmkzoo.errors import InvalidArgumentError

__all__ = ["build_optimizer", "AdamL2", "Lamb"]


@lmkzoo_export
class AdamL2(keras.optimizers.Adam):
    """Adam with PyTorch-style (coupled, L2) weight decay: ``g ← g + weight_decay · θ``, then the Adam update.

    The same update as ``torch.optim.Adam(..., weight_decay=weight_decay)`` except for where epsilon sits:
    Keras divides by ``sqrt(v) + eps`` with the bias corrections folded into the step size, PyTorch by
    ``sqrt(v̂) + eps``, so Keras' ``epsilon`` equals PyTorch's ``eps · sqrt(1 − β₂ᵗ)`` (a difference only when
    ``sqrt(v̂)`` is near eps). Variables excluded with :meth:`exclude_from_weight_decay` get the plain Adam
    update.

    Args:
        learning_rate, beta_1, beta_2, epsilon, amsgrad, **kwargs: as ``keras.optimizers.Adam``.
        weight_decay: the L2 coefficient added to the gradient (PyTorch's ``weight_decay``), ``>= 0``.
    """

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False,
                 weight_decay=0.0, name="adam_l2", **kwargs):
        try:
            wd = float(weight_decay) if weight_decay is not None else 0.0
        except (TypeError, ValueError):
            wd = float("nan")
        if not (math.isfinite(wd) and wd >= 0) or isinstance(weight_decay, bool):
            raise InvalidArgumentError(f"weight_decay must be a finite number >= 0; got {weight_decay!r}")
        # the base class stores weight_decay (get_config, exclude_from_weight_decay); _apply_weight_decay below
        # keeps it from also applying Keras' decoupled decay
        super().__init__(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon,
                         amsgrad=amsgrad, weight_decay=wd, name=name, **kwargs)

    def _apply_weight_decay(self, variables):
        """No decoupled decay: the decay is in the gradient (:meth:`update_step`)."""
        return

    def update_step(self, gradient, variable, learning_rate):
        if self.weight_decay and self._use_weight_decay(variable):
            gradient = ops.add(ops.cast(gradient, variable.dtype),
                               ops.multiply(ops.cast(self.weight_decay, variable.dtype), variable))
        super().update_step(gradient, variable, learning_rate)


@lmkzoo_export
class Lamb(keras.optimizers.Lamb):
    """LAMB (You et al. 2020) with the trust ratio on weight matrices only, as BERT's reference LAMB applies it.

    LAMB scales each variable's Adam step ``u`` by the trust ratio ``‖w‖ / ‖u‖``, so a step moves a variable by
    ``lr · ‖w‖``: at most ``lr`` of its own norm. Keras' ``Lamb`` does this for every variable; a variable that
    starts at zero or near it (biases, LOTR's landmark queries drawn from N(0, 1e-4²)) then grows by a factor
    ``1 + lr`` per step and stays where it started: LOTR-M's queries kept their initial norm through 16 epochs
    of 300-W (one of the two reasons it put all 68 points at one spot; docs/training_300w.md).
    BERT's LAMB (and TF-Addons') exclude biases and LayerNorm parameters from the adaptation; here every
    variable of rank ≤ 1 (biases, normalisation scales and offsets) and every variable whose path contains a
    name in ``exclude_from_layer_adaptation`` (default: learned ``embeddings``, i.e. queries and positional
    tables) takes the plain Adam step ``lr · u`` instead. Weight decay is Keras' decoupled decay, as in ``Lamb``.

    Args:
        exclude_from_layer_adaptation: substrings of variable paths that take the Adam step (rank-≤1 variables
            always do).
        learning_rate, beta_1, beta_2, epsilon, **kwargs: as ``keras.optimizers.Lamb``.
    """

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 exclude_from_layer_adaptation=("embeddings",), name="lamb", **kwargs):
        if isinstance(exclude_from_layer_adaptation, str) or not all(
                isinstance(n, str) and n for n in exclude_from_layer_adaptation):
            raise InvalidArgumentError("exclude_from_layer_adaptation must be a list of non-empty names; got "
                                       f"{exclude_from_layer_adaptation!r}")
        super().__init__(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, name=name,
                         **kwargs)
        self.exclude_from_layer_adaptation = tuple(exclude_from_layer_adaptation)

    def adapts(self, variable) -> bool:
        """Whether ``variable`` takes the trust-ratio step (a weight matrix not named in the exclusions)."""
        path = getattr(variable, "path", None) or variable.name
        return len(variable.shape) >= 2 and not any(n in path for n in self.exclude_from_layer_adaptation)

    def update_step(self, gradient, variable, learning_rate):
        lr = ops.cast(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        step = ops.cast(self.iterations + 1, variable.dtype)
        m = self._momentums[self._get_variable_index(variable)]
        v = self._velocities[self._get_variable_index(variable)]
        self.assign_add(m, ops.multiply(ops.subtract(gradient, m), 1 - self.beta_1))
        self.assign_add(v, ops.multiply(ops.subtract(ops.square(gradient), v), 1 - self.beta_2))
        m_hat = ops.divide(m, 1.0 - ops.power(ops.cast(self.beta_1, variable.dtype), step))
        v_hat = ops.divide(v, 1.0 - ops.power(ops.cast(self.beta_2, variable.dtype), step))
        update = ops.divide(m_hat, ops.add(ops.sqrt(v_hat), self.epsilon))
        if self.adapts(variable):
            w_norm = ops.sqrt(ops.sum(ops.square(variable)))
            u_norm = ops.sqrt(ops.sum(ops.square(update)))
            ratio = ops.where(ops.logical_and(ops.greater(w_norm, 0), ops.greater(u_norm, 0)), w_norm / u_norm, 1.0)
            update = ratio * update
        self.assign_sub(variable, lr * update)

    def get_config(self):
        return {**super().get_config(), "exclude_from_layer_adaptation": list(self.exclude_from_layer_adaptation)}


def build_optimizer(recipe: dict, steps_per_epoch: int, *, learning_rate: float | None = None, epochs: int | None = None):
    """The recipe's optimizer with its learning-rate schedule (step decay at epoch boundaries, or cosine)."""
    import keras

    opt = dict(recipe.get("optimizer") or {"name": "adam", "learning_rate": 1e-3})
    sched = dict(recipe.get("schedule") or {})
    lr = float(learning_rate if learning_rate is not None else opt.get("learning_rate", 1e-3))
    total = int(epochs if epochs is not None else recipe.get("epochs", 1))
    kind = sched.get("name", "constant")
    if kind == "step":
        bounds = [int(b) for b in sched.get("boundaries_epochs", [])]
        if epochs is not None and recipe.get("epochs") and int(recipe["epochs"]) != total:
            # a shortened run keeps the recipe's decay points at the same fraction of training
            bounds = [max(1, round(b * total / int(recipe["epochs"]))) for b in bounds]
        factor = float(sched.get("factor", 0.1))
        bounds = sorted(b for b in bounds if 0 < b < total)
        # PiecewiseConstantDecay keeps values[i] while step <= boundary: "- 1" makes the first step of epoch b
        # (optimizer iteration b * steps_per_epoch) the first at the decayed rate
        schedule = keras.optimizers.schedules.PiecewiseConstantDecay(
            [b * steps_per_epoch - 1 for b in bounds], [lr * factor**i for i in range(len(bounds) + 1)]
        ) if bounds else lr
    elif kind == "cosine":
        schedule = keras.optimizers.schedules.CosineDecay(lr, total * steps_per_epoch, alpha=float(sched.get("alpha", 0.01)))
    elif kind == "constant":
        schedule = lr
    else:
        raise InvalidArgumentError(f"unknown schedule {kind!r}; allowed: step, cosine, constant")
    name = opt.get("name", "adam").lower()
    wd = opt.get("weight_decay") or None
    if name == "adam":
        # PyTorch ``Adam(weight_decay=wd)`` (the papers' recipes): L2 coupled to the gradient, not AdamW's decay
        return keras.optimizers.Adam(schedule) if not wd else AdamL2(schedule, weight_decay=float(wd))
    if name == "adamw":
        return keras.optimizers.AdamW(schedule, weight_decay=float(wd or 1e-4))
    if name == "lamb":
        return Lamb(schedule, weight_decay=wd)
    if name == "rmsprop":
        # Keras divides by sqrt(v + eps), torch by sqrt(v) + eps: a torch recipe's eps (``torch_epsilon``) maps
        # to eps² inside the root (equal up to O(eps) in the denominator)
        eps = float(opt["torch_epsilon"]) ** 2 if "torch_epsilon" in opt else float(opt.get("epsilon", 1e-8))
        return keras.optimizers.RMSprop(schedule, rho=float(opt.get("rho", 0.99)), epsilon=eps,
                                        momentum=float(opt.get("momentum", 0.0)))
    if name == "sgd":
        return keras.optimizers.SGD(schedule, momentum=float(opt.get("momentum", 0.9)), weight_decay=wd)
    raise InvalidArgumentError(f"unknown optimizer {name!r}; allowed: adam, adamw, lamb, rmsprop, sgd")
