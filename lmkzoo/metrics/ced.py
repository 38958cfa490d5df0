"""Failure rate, cumulative error distribution (CED) and its area (AUC)."""

from __future__ import annotations

import numpy as np

from lmkzoo.errors import InvalidArgumentError

__all__ = ["failure_rate", "auc", "ced", "plot_ced"]


def _check_nmes(nmes) -> np.ndarray:
    e = np.asarray(nmes, dtype=np.float64).reshape(-1)
    if e.size == 0:
        raise InvalidArgumentError("nmes is empty; pass at least one per-image error")
    if np.any(e[np.isfinite(e)] < 0):
        raise InvalidArgumentError(f"nmes must be >= 0; got a minimum of {np.nanmin(e)}")
    return e


def _check_cutoff(cutoff) -> float:
    c = float(cutoff)
    if not np.isfinite(c) or c <= 0:
        raise InvalidArgumentError(f"cutoff must be a positive number; got {cutoff!r}")
    return c


def failure_rate(nmes, cutoff: float = 0.08) -> float:
    """Fraction of images whose NME is above ``cutoff``. NaN errors (degenerate faces) count as failures."""
    e = _check_nmes(nmes)
    c = _check_cutoff(cutoff)
    ok = np.isfinite(e) & (e <= c)
    return float(1.0 - ok.mean())


def auc(nmes, cutoff: float = 0.08) -> float:
    """Area under the CED curve from 0 to ``cutoff``, divided by ``cutoff`` (1.0 = every error is 0).

    The CED is the step function ``F(x) = mean(nme <= x)``; its integral is exact here:
    ``AUC = mean(max(cutoff - nme, 0)) / cutoff``. (PIPNet and LUVLi integrate the same curve numerically
    with a 1e-4 step; the difference is below that step.) NaN errors contribute 0.
    """
    e = _check_nmes(nmes)
    c = _check_cutoff(cutoff)
    contrib = np.where(np.isfinite(e), np.clip(c - e, 0.0, None), 0.0)
    return float(contrib.mean() / c)


def ced(nmes, cutoff: float = 0.08, *, step: float = 1e-4):
    """CED curve data: ``(x, y)`` with ``x`` from 0 to ``cutoff`` and ``y[i] = mean(nme <= x[i])``."""
    e = _check_nmes(nmes)
    c = _check_cutoff(cutoff)
    if step <= 0 or step > c:
        raise InvalidArgumentError(f"step must be in (0, cutoff]; got {step!r}")
    x = np.linspace(0.0, c, int(round(c / step)) + 1)
    finite = np.sort(e[np.isfinite(e)])
    y = np.searchsorted(finite, x, side="right") / e.size
    return x, y


def plot_ced(curves, cutoff: float = 0.08, *, ax=None, title: str | None = None, percent: bool = True):
    """Plot one CED per entry of ``curves`` (``{label: nmes}`` or one array) and return the Figure.

    The legend shows each curve's NME, FR and AUC at ``cutoff``.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    if not isinstance(curves, dict):
        curves = {"model": curves}
    if ax is None:
        fig, ax = plt.subplots(figsize=(5, 4), dpi=100)
    else:
        fig = ax.figure
    k = 100.0 if percent else 1.0
    for label, nmes in curves.items():
        x, y = ced(nmes, cutoff)
        e = _check_nmes(nmes)
        lab = (
            f"{label}: NME {k * np.nanmean(e):.2f}{'%' if percent else ''}, "
            f"FR {100 * failure_rate(e, cutoff):.1f}%, AUC {auc(e, cutoff):.3f}"
        )
        ax.plot(x * k, y, label=lab)
    ax.set_xlim(0, cutoff * k)
    ax.set_ylim(0, 1)
    ax.set_xlabel("NME (%)" if percent else "NME")
    ax.set_ylabel("fraction of images")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=7)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig
