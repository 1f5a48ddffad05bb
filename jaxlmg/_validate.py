"""Input checks done before any work (concrete inputs only; traced inputs get per-point status)."""

from __future__ import annotations

import jax
import numpy as np

__all__ = ["check", "is_traced"]


def is_traced(x) -> bool:
    return isinstance(x, jax.core.Tracer)


def check(name: str, x, *, lower: float | None = None, strict: bool = False, upper=None,
          integer: bool = False) -> None:
    """Raise ``ValueError`` naming ``name`` and its allowed range if any concrete value is outside
    it.

    Traced values (inside a user's ``jit``/``vmap``) are not checked here; the engines then mark
    the offending points with ``Status.OUT_OF_DOMAIN`` instead.
    """
    if is_traced(x):
        return
    a = np.asarray(x)
    if a.dtype == object or not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
        raise ValueError(f"{name} must be a real number or array of them, got {x!r}")
    if np.iscomplexobj(a):
        raise ValueError(f"{name} must be real, got a complex value")
    rng = _range_text(lower, strict, upper)
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must be finite (allowed: {rng}); got a non-finite value")
    bad = np.zeros(a.shape, bool)
    if lower is not None:
        bad |= (a <= lower) if strict else (a < lower)
    if upper is not None:
        bad |= a > upper
    if integer:
        bad |= a != np.round(a)
    if bad.any():
        first = a[bad].ravel()[0] if a.ndim else a.item()
        kind = "an integer " if integer else ""
        count = f" ({int(bad.sum())} of {a.size} values out of range)" if a.ndim else ""
        raise ValueError(f"{name} must be {kind}in {rng}; got {first!r}{count}")


def _range_text(lower, strict, upper) -> str:
    lo = "(-inf" if lower is None else ("(" if strict else "[") + f"{lower:g}"
    hi = "inf)" if upper is None else f"{upper:g}]"
    return f"{lo}, {hi}"
