"""Input checks done before any work (concrete inputs only; traced inputs get per-point status)."""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["as_precision", "check", "is_traced"]


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


def as_precision(precision: str, *arrays):
    """The arrays as float64 (default) or float32 (``precision="float32"``, with a warning that
    it is not accurate enough near tricritical points).

    Raises:
        ValueError: ``precision`` is not ``"float64"`` or ``"float32"``.
        RuntimeError: float64 asked for while ``jax_enable_x64`` is off.
    """
    if precision == "float64":
        if not jax.config.read("jax_enable_x64"):
            raise RuntimeError("float64 requested but jax_enable_x64 is off; import jaxlmg first "
                               "or set JAX_ENABLE_X64=1")
        return [jnp.asarray(a, jnp.float64) for a in arrays]
    if precision == "float32":
        warnings.warn("precision='float32': free energies are accurate to ~1e-6 only; transitions "
                      "closer than ~1e-3 to a tricritical point are not resolved.",
                      stacklevel=3)
        return [jnp.asarray(a, jnp.float32) for a in arrays]
    raise ValueError(f"precision must be 'float64' or 'float32', got {precision!r}")
