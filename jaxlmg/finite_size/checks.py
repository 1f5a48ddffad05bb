"""Input checks and memory estimates of the finite-N API (host side, before any work)."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import numpy as np

from .._validate import check

__all__ = ["MAX_BYTES", "check_N", "concrete", "check_model", "coupling_arrays", "check_e_max",
           "check_max_bytes", "check_lmg", "estimate_bytes", "blocks_bytes", "window_bytes",
           "layout_size", "guard", "point_status", "Grid", "grid"]

#: Default memory limit of one call (bytes), see :func:`estimate_bytes`.
MAX_BYTES = 4 * 2**30


def check_N(N) -> int:
    """``N`` as an ``int``; ``ValueError`` unless it is an integer ``>= 1`` (an integral float is
    accepted)."""
    ok = isinstance(N, int | np.integer) and not isinstance(N, bool)
    if not ok and isinstance(N, float | np.floating) and float(N).is_integer():
        ok, N = True, int(N)
    if not ok or int(N) < 1:
        raise ValueError(f"N must be an integer in [1, inf) (number of spins); got {N!r}")
    return int(N)


def concrete(name, x):
    """``x`` as a float64 NumPy array; ``TypeError`` naming ``name`` if it is traced."""
    if isinstance(x, jax.core.Tracer):
        raise TypeError(f"jaxlmg.finite_size needs concrete values; {name} is traced (the number "
                        "of levels and iterations depends on the data: call it outside jit/vmap)")
    return np.asarray(x, np.float64)


def check_model(model) -> None:
    """``TypeError`` unless ``model`` is a :class:`jaxlmg.models.CollectiveSpinModel`."""
    from ..models import CollectiveSpinModel

    if not isinstance(model, CollectiveSpinModel):
        raise TypeError(f"model must be a jaxlmg.models.CollectiveSpinModel (e.g. LMG4()); "
                        f"got {model!r}")


def coupling_arrays(couplings):
    """The leaves of ``couplings`` as named, checked (finite) float64 arrays, and the treedef.

    Names are the NamedTuple's fields (``J``, ``K``, ...), else ``couplings[i]``.
    """
    leaves, treedef = jax.tree_util.tree_flatten(couplings)
    fields = getattr(couplings, "_fields", None)
    names = list(fields) if fields and len(fields) == len(leaves) else [
        f"couplings[{i}]" for i in range(len(leaves))]
    for name, x in zip(names, leaves, strict=True):
        if not isinstance(x, jax.core.Tracer):
            check(name, x)
    return [concrete(n, x) for n, x in zip(names, leaves, strict=True)], treedef


def check_e_max(e_max) -> np.ndarray:
    """``e_max`` as an array: real numbers or ``+inf`` (all levels); ``None`` is ``+inf``."""
    if e_max is None:
        return np.asarray(np.inf)
    if not isinstance(e_max, jax.core.Tracer):
        a = np.asarray(e_max)
        if a.dtype == object or not np.issubdtype(a.dtype, np.number) or np.iscomplexobj(a):
            raise ValueError(f"e_max must be a real number or array of them; got {e_max!r}")
        bad = np.isnan(a) | (a == -np.inf)
        if np.any(bad):
            raise ValueError("e_max must be a real number or +inf (energy per spin; +inf or None:"
                             f" all levels); got {a[bad].ravel()[0]!r}")
    return concrete("e_max", e_max)


def check_max_bytes(max_bytes) -> None:
    """``max_bytes`` is ``None`` (no limit) or a positive finite number."""
    ok = max_bytes is None or (isinstance(max_bytes, int | float | np.integer | np.floating)
                               and not isinstance(max_bytes, bool)
                               and np.isfinite(max_bytes) and max_bytes > 0)
    if not ok:
        raise ValueError(f"max_bytes must be None (no limit) or a number in (0, inf) (bytes); "
                         f"got {max_bytes!r}")


def check_lmg(h, K, J) -> None:
    """The ranges of :class:`jaxlmg.models.LMG4`'s finite-N functions: ``J > 0``, ``h, K >= 0``."""
    check("J", J, lower=0.0, strict=True)
    check("h", h, lower=0.0)
    check("K", K, lower=0.0)


#: Bytes per level of the working arrays of a full spectrum (layout, plan, values).
_BYTES_PER_LEVEL = 200


def estimate_bytes(N: int, n_points: int = 1, observables: bool = False) -> int:
    """Memory for the full spectrum of ``N`` spins at ``n_points`` points (bytes, an estimate).

    There are ``Σ_S (2S+1) ≈ (N/2 + 1)²`` distinct levels (with or without the parity split);
    the per-``N`` tables cost about ``_BYTES_PER_LEVEL`` bytes per level, the results 9 (33 with
    observables) per level and point.  Closed form: no allocation.

    Raises:
        ValueError: ``N`` not an integer ``>= 1``, or ``n_points`` not an integer ``>= 0``.
    """
    N = check_N(N)
    if isinstance(n_points, bool) or not isinstance(n_points, int | np.integer) or n_points < 0:
        raise ValueError(f"n_points must be an integer in [0, inf); got {n_points!r}")
    n = int(layout_size(N))
    return n * _BYTES_PER_LEVEL + n * n_points * (33 if observables else 9)


#: Bytes per block of the per-``N`` tables that every computation builds, windowed or not (the
#: layout, the bounds of every block, a lane per block in the count sweeps).
_BYTES_PER_BLOCK = 512


def blocks_bytes(N: int, z2: bool = True) -> int:
    """Memory of the per-block tables of ``N`` spins (bytes, closed form): the least any call
    needs (an energy window still counts the levels of every block)."""
    n_blocks = (N // 2 + 1) * (2 if z2 else 1)
    return n_blocks * _BYTES_PER_BLOCK + 8 * (N + 1)


def window_bytes(lay, n_levels: int) -> int:
    """Memory for ``n_levels`` levels below an energy window (no per-level tables of all levels)."""
    return 200 * n_levels + 200 * lay.dim.size


def layout_size(N: int) -> int:
    s = N // 2 + 1 if N % 2 == 0 else (N + 1) // 2
    return s * s if N % 2 == 0 else s * (s + 1)


def guard(N: int, nbytes: int, max_bytes, what: str):
    if max_bytes is not None and nbytes > max_bytes:
        raise ValueError(
            f"N = {N}: {what} needs about {nbytes / 2**30:.2f} GiB (> max_bytes = "
            f"{max_bytes / 2**30:.2f} GiB); lower N, use fewer parameter points, use an energy "
            f"window (e_max / low T), or raise max_bytes")


def point_status(conv) -> int:
    from .._status import Status

    return int(Status.OK if bool(np.all(conv)) else Status.NOT_CONVERGED)


class Grid(NamedTuple):
    """The broadcast grid of a model-generic call (host, flat float64 arrays).

    Attributes:
        shape: broadcast shape of the couplings' leaves, ``h`` and the extra arrays.
        leaves: the couplings' leaves, each flat ``(n,)``; ``treedef`` rebuilds a pytree.
        h: flat ``(n,)``.
        extra: the extra arrays (e.g. ``T``), flat, in the order given.
    """

    shape: tuple
    leaves: list
    treedef: Any
    h: np.ndarray
    extra: list

    def couplings(self, i: int):
        """The couplings of point ``i`` (Python floats)."""
        return jax.tree_util.tree_unflatten(self.treedef, [float(a[i]) for a in self.leaves])


def grid(model, couplings, h, *extra) -> Grid:
    """Check ``model``, the couplings (finite), ``h`` (``>= 0``) and broadcast them with the
    already checked ``extra`` arrays.

    Raises:
        TypeError: not a model, or a traced argument.
        ValueError: a non-finite coupling or ``h`` outside ``[0, inf)`` (named).
    """
    check_model(model)
    leaves, treedef = coupling_arrays(couplings)
    check("h", h, lower=0.0)
    h = concrete("h", h)
    arrays = [*leaves, h, *extra]
    shape = np.broadcast_shapes(*(a.shape for a in arrays))
    flat = [np.broadcast_to(a, shape).reshape(-1) for a in arrays]
    nl = len(leaves)
    return Grid(shape=shape, leaves=flat[:nl], treedef=treedef, h=flat[nl], extra=flat[nl + 1:])
