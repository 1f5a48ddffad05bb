"""Finite-size scaling: fits to ``a + b ln N/N + c/N`` and the comparison with the mean field."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax.numpy as jnp
import numpy as np

from .._validate import check
from .checks import MAX_BYTES, blocks_bytes, check_lmg, check_N, guard
from .thermo import free_energy

__all__ = ["Extrapolation", "MeanFieldComparison", "extrapolate", "mean_field_comparison"]


class Extrapolation(NamedTuple):
    """Least-squares fit of finite-size data (see :func:`extrapolate`).

    Attributes:
        limit: the ``N → ∞`` value ``a``.
        coef: all fitted coefficients, shape ``(n_terms, ...)`` (``a`` first).
        form: the fitted form.
        residual: largest absolute residual of the fit.
    """

    limit: Any
    coef: Any
    form: str
    residual: Any


class MeanFieldComparison(NamedTuple):
    """Finite-N free energies against the mean field (see :func:`mean_field_comparison`).

    Attributes:
        Ns: the sizes.
        f: exact free energy per spin, shape ``(len(Ns), *shape)``.
        f_mean_field: canonical mean field ``jaxlmg.canonical(h, K, T, J).f`` (eq. 19).
        difference: ``f - f_mean_field``.
        scaled: ``difference · N / ln N``, bounded if the finite-size correction is
            ``O(ln N / N)``.
        extrapolated: :class:`Extrapolation` of ``f`` to ``N → ∞``.
    """

    Ns: Any
    f: Any
    f_mean_field: Any
    difference: Any
    scaled: Any
    extrapolated: Any


# --------------------------------------------------------------------------- finite-size scaling


_FORMS = {
    "1/N": lambda N: [np.ones_like(N), 1.0 / N],
    "lnN/N": lambda N: [np.ones_like(N), np.log(N) / N, 1.0 / N],
    "1/N2": lambda N: [np.ones_like(N), 1.0 / N, 1.0 / N**2],
}


def _check_form(form) -> None:
    if form not in _FORMS:
        raise ValueError(f"form must be one of {sorted(_FORMS)}; got {form!r}")


def extrapolate(Ns, values, form: str = "lnN/N") -> Extrapolation:
    """Fit ``values(N)`` to a finite-size form and return its ``N → ∞`` limit.

    Forms: ``"1/N"``: ``a + c/N``; ``"lnN/N"`` (default): ``a + b ln N/N + c/N`` (the mean-field
    free energy of a fully connected model has this correction: the ``ln N`` comes from the
    integration over the ``O(1)`` collective coordinates of eqs. 11-12); ``"1/N2"``:
    ``a + c/N + d/N²``.  Least squares when there are more sizes than terms.

    Args:
        Ns: sizes, 1-D, at least as many as the form has terms.
        values: shape ``(len(Ns), ...)``; each trailing index is fitted separately.
        form: one of ``"1/N"``, ``"lnN/N"``, ``"1/N2"``.
    Returns:
        :class:`Extrapolation`.
    Raises:
        ValueError: an unknown form, ``Ns`` not positive and finite, ``values`` not finite or of
            the wrong shape, or too few sizes.
    """
    _check_form(form)
    Ns = np.asarray(Ns, np.float64)
    y = np.asarray(values, np.float64)
    if Ns.ndim != 1 or not np.all(np.isfinite(Ns)) or np.any(Ns <= 0):
        raise ValueError(f"Ns must be a 1-D array of sizes in (0, inf); got {Ns!r}")
    if not np.all(np.isfinite(y)):
        raise ValueError("values must be finite (a NaN or inf would spoil every fit); got "
                         f"{int(np.sum(~np.isfinite(y)))} non-finite of {y.size}")
    if y.shape[:1] != Ns.shape:
        raise ValueError(f"values must have shape (len(Ns), ...) = ({Ns.size}, ...); got {y.shape}")
    A = np.stack(_FORMS[form](Ns), axis=1)
    if Ns.size < A.shape[1]:
        raise ValueError(f"form {form!r} needs at least {A.shape[1]} sizes; got {Ns.size}")
    flat = y.reshape(Ns.size, -1)
    coef, *_ = np.linalg.lstsq(A, flat, rcond=None)
    resid = np.max(np.abs(A @ coef - flat), axis=0)
    tail = y.shape[1:]
    return Extrapolation(limit=jnp.asarray(coef[0].reshape(tail)),
                         coef=jnp.asarray(coef.reshape(A.shape[1], *tail)), form=form,
                         residual=jnp.asarray(resid.reshape(tail)))


def mean_field_comparison(Ns, h, K, T, J=1.0, *, form: str = "lnN/N") -> MeanFieldComparison:
    """Exact free energies per spin for several ``N`` against the canonical mean field.

    Args:
        Ns: sizes (integers ``>= 1``).
        h, K, T, J: as in :func:`free_energy` (broadcastable).
        form: finite-size form for :func:`extrapolate` (needs enough sizes).
    Returns:
        :class:`MeanFieldComparison`; ``f`` has shape ``(len(Ns), *broadcast_shape)``.
    Raises:
        ValueError: as :func:`free_energy` and :func:`extrapolate`, for any of the sizes, before
            any of them is computed.
    """
    from .._canonical import canonical

    _check_form(form)
    Ns = [check_N(n) for n in Ns]
    check_lmg(h, K, J)
    check("T", T, lower=0.0)
    for n in Ns:  # every size's guard answers before the first size is computed
        guard(n, blocks_bytes(n), MAX_BYTES, "the tables of every block")
    f = np.stack([np.asarray(free_energy(n, h, K, T, J, magnetization=False).f) for n in Ns])
    f_mf = np.asarray(canonical(h, K, T, J).f)
    N_arr = np.asarray(Ns, np.float64).reshape(-1, *([1] * f_mf.ndim))
    diff = f - f_mf
    with np.errstate(divide="ignore", invalid="ignore"):
        scaled = diff * N_arr / np.log(N_arr)
    n_terms = len(_FORMS[form](np.ones(1)))
    ext = extrapolate(Ns, f, form) if len(Ns) >= n_terms else None
    return MeanFieldComparison(Ns=np.asarray(Ns), f=jnp.asarray(f), f_mean_field=jnp.asarray(f_mf),
                               difference=jnp.asarray(diff), scaled=jnp.asarray(scaled),
                               extrapolated=ext)
