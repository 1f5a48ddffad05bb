"""Input checks and memory estimates of the finite-N API (host side, before any work)."""

from __future__ import annotations

import jax
import numpy as np

from .._validate import check

__all__ = ["MAX_BYTES", "check_N", "concrete", "check_params", "estimate_bytes", "window_bytes",
           "layout_size", "guard", "point_status"]

#: Default memory limit of one call (bytes), see :func:`estimate_bytes`.
MAX_BYTES = 4 * 2**30


def check_N(N) -> int:
    ok = isinstance(N, int | np.integer) and not isinstance(N, bool)
    if not ok and isinstance(N, float | np.floating) and float(N).is_integer():
        ok, N = True, int(N)
    if not ok or int(N) < 1:
        raise ValueError(f"N must be an integer in [1, inf) (number of spins); got {N!r}")
    return int(N)



def concrete(name, x):
    if isinstance(x, jax.core.Tracer):
        raise TypeError(f"jaxlmg.finite_size needs concrete values; {name} is traced (the number "
                        "of levels and iterations depends on the data: call it outside jit/vmap)")
    return np.asarray(x, np.float64)


def check_params(h, K, J):
    check("J", J, lower=0.0, strict=True)
    check("h", h, lower=0.0)
    check("K", K, lower=0.0)
    return concrete("h", h), concrete("K", K), concrete("J", J)


#: Bytes per level of the working arrays of a full spectrum (layout, plan, values).
_BYTES_PER_LEVEL = 200


def estimate_bytes(N: int, n_points: int = 1, observables: bool = False) -> int:
    """Memory for the full spectrum of ``N`` spins at ``n_points`` points (bytes, an estimate).

    There are ``Σ_S (2S+1) ≈ (N/2 + 1)²`` distinct levels; the per-``N`` tables cost about
    ``_BYTES_PER_LEVEL`` bytes per level, the results 9 (25 with observables) per level and point.
    """
    N = check_N(N)
    n = int(layout_size(N))
    return n * _BYTES_PER_LEVEL + n * n_points * (25 if observables else 9)


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

