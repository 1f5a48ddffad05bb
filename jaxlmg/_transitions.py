"""Phase boundaries of the extended LMG model, located exactly and differentiable.

* ``critical_field(T)``: the second-order line, zero of the paramagnetic stiffness
  ``u''(0) + h coth(h/T)``; for LMG4 ``h/(2J) = tanh(h/T)``, eq. (25) (= eqs. 34, 37 in the MCE).
* ``landau_coefficients``: the reduced Landau coefficients ``b2, b4`` of the paramagnet,
  ``f = f0 + b2 mz² + b4 mz⁴ + ...`` with ``s`` relaxed (CE, eq. 22) or at fixed ``s`` (MCE,
  eq. 33), by automatic differentiation to all orders (no low-temperature expansion).
* ``tricritical(T, ensemble)``: ``b2 = b4 = 0`` solved by Newton in ``(h, K)``.
* ``first_order_field`` / ``coexistence``: the canonical first-order (coexistence) line, where
  the ferromagnetic and paramagnetic minima have equal free energy, and its spinodals.

Every boundary is the root of a smooth residual ``G(x, p) = 0``; the forward value comes from a
robust solver (bisection on the global minimum of the canonical engine, then Newton), derivatives
from the implicit function theorem (:func:`jaxlmg._implicit.implicit_root`), never from
differentiating solver iterations.  One-point kernels; ``vmap`` and ``jit`` in :func:`_batched`.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from ._canonical import canonical_point, paramagnetic_stiffness, reduced_free_energy
from ._implicit import implicit_root
from ._model import entropy, field_state
from ._status import Status
from ._validate import check
from .models import LMG4, LMGCouplings

__all__ = [
    "Coexistence",
    "LandauCoefficients",
    "Tricritical",
    "coexistence",
    "critical_field",
    "first_order_field",
    "landau_coefficients",
    "tricritical",
]

_MODEL = LMG4()
_BISECT = 60  # bisection steps: 2^-60 of the bracket, below float64 resolution
ENSEMBLES = ("canonical", "microcanonical")


class LandauCoefficients(NamedTuple):
    """Reduced Landau coefficients of the paramagnet, ``f = f0 + b2 mz² + b4 mz⁴ + O(mz⁶)``
    (eq. 22 canonical with ``s`` relaxed; eq. 33 microcanonical at fixed ``s = tanh(h/T)``)."""

    b2: Any
    b4: Any


class Tricritical(NamedTuple):
    """Tricritical point at temperature ``T``: field ``h``, 4-spin coupling ``K``, status."""

    h: Any
    K: Any
    status: Any


class Coexistence(NamedTuple):
    """Canonical first-order transition at fixed ``(K, T, J)`` (energy units).

    Attributes:
        h: coexistence field (equal free energies of the two minima).
        para_spinodal: field below which the paramagnet is unstable (= ``critical_field(T)``).
        ferro_spinodal: field above which the ferromagnetic local minimum disappears.
        Mz, Mx, s, energy, entropy: the ferromagnetic coexisting state (``Mz > 0``).
        Mx_para, s_para, energy_para, entropy_para: the paramagnetic coexisting state (``Mz = 0``).
        status: :class:`jaxlmg.Status`; ``NO_TRANSITION`` (all NaN) where the transition along
            ``h`` is continuous or absent.
    """

    h: Any
    para_spinodal: Any
    ferro_spinodal: Any
    Mz: Any
    Mx: Any
    s: Any
    energy: Any
    entropy: Any
    Mx_para: Any
    s_para: Any
    energy_para: Any
    entropy_para: Any
    status: Any


# --------------------------------------------------------------------------- critical line


def _stiffness(h, p):
    T, J = p
    return paramagnetic_stiffness(_MODEL, LMGCouplings(J, 0.0), h, T)


def _critical_solver(p):
    """Root of ``h coth(h/T) = 2J`` in ``(0, 2J]``: convex increasing, so Newton from the right
    end converges monotonically (bisection-safe); NaN for ``T >= 2J``."""
    T, J = p
    a = 2.0 * J

    def body(_, h):
        g, dg = jax.jvp(lambda x: _stiffness(x, p), (h,), (jnp.ones_like(h),))
        return jnp.clip(h - g / jnp.where(dg > 0, dg, 1.0), 0.0, a)

    h = jax.lax.fori_loop(0, 100, body, a)
    ok = (T < a) & (T >= 0)
    return jnp.where(ok, h, jnp.nan)[None]


_critical_root = implicit_root(lambda x, p: _stiffness(x[0], p)[None], _critical_solver)


def _critical_point(T, J):
    return _critical_root((T, J))[0]


# --------------------------------------------------------------------------- Landau coefficients


def _f_dir(s, mz, h, K, T, J):
    """Eq. (19) at ``φ = 0`` as a function of ``s`` and ``mz = cosθ`` (exact, no expansion)."""
    e = _MODEL.interaction(s * mz, LMGCouplings(J, K)) - h * s * jnp.sqrt((1.0 - mz) * (1.0 + mz))
    # (at T = 0, s = 1 where S' = -inf: the entropy term and its derivatives are exactly 0)
    return e - jnp.where(T > 0, T * entropy(s), 0.0)


def _landau_point(h, K, T, J, ensemble: str):
    """``b2, b4`` of ``f = f0 + b2 w + b4 w² + ...``, ``w = mz²`` (eq. 22), at the paramagnet.

    At fixed ``s`` the coefficients of ``w`` and ``w²`` are ``∂²f/∂mz²/2`` and ``∂⁴f/∂mz⁴/24``
    (nested forward-mode autodiff of the exact eq. 19).  Canonical, ``s`` relaxed:
    ``f(w) = f(s*(w), w)`` with ``∂f/∂s = 0``; the envelope theorem gives ``b2 = f_w`` and the
    implicit function theorem ``b4 = f_ww/2 - f_sw²/(2 f_ss)`` (a Schur complement), exact at the
    paramagnet ``s0 = tanh(h/T)``: the all-orders content of eqs. (27)-(29).  Microcanonical,
    ``s`` fixed (eq. 33): no Schur term.  ``T = 0``: ``s = 1`` in both ensembles (eq. 17).
    """
    hot = T > 0
    Ts = jnp.where(hot, T, 1.0)
    # s0 < 1 at T > 0 (tanh rounds to 1 for h/T > 19, where S'(s) = -inf would turn the zero
    # s-tangents of the mz-derivatives into NaN); the O(eps) shift is far below rounding of b4.
    one_minus = 1.0 - jnp.finfo(jnp.result_type(h)).epsneg
    s0 = jnp.where(hot, jnp.minimum(jnp.tanh(h / Ts), one_minus), 1.0)
    T_eff = jnp.where(hot, Ts, 0.0)
    zero = jnp.zeros_like(s0)

    def d2(s):  # ∂²f/∂mz² at mz = 0, fixed s
        f = functools.partial(_f_dir, s, h=h, K=K, T=T_eff, J=J)
        return jax.jacfwd(jax.jacfwd(f))(zero)

    def d4(s):
        f = functools.partial(_f_dir, s, h=h, K=K, T=T_eff, J=J)
        return jax.jacfwd(jax.jacfwd(jax.jacfwd(jax.jacfwd(f))))(zero)

    b2 = d2(s0) / 2.0
    b4 = d4(s0) / 24.0
    if ensemble == "canonical":
        f_sw = jax.jacfwd(d2)(s0) / 2.0
        # f_ss = e_ss + T/(1 - s0²) with 1 - s0² = sech²(h/T) = 4q/(1+q)², q = e^{-2h/T}:
        # written so that the deep quantum regime (1 - s0 below rounding) stays finite.
        e_ss = jax.grad(jax.grad(lambda s: _f_dir(s, zero, h, K, 0.0, J)))(s0)
        q = jnp.exp(-2.0 * h / Ts)
        sech2 = 4.0 * q / ((1.0 + q) * (1.0 + q))
        b4 = b4 - jnp.where(hot, f_sw * f_sw * sech2 / (2.0 * (e_ss * sech2 + Ts)), 0.0)
    return LandauCoefficients(b2=b2, b4=b4)


# --------------------------------------------------------------------------- tricritical point


def _tricritical_residual(x, p, ensemble):
    T, J = p
    c = _landau_point(x[0], x[1], T, J, ensemble)
    return jnp.stack([c.b2, c.b4])


def _tricritical_solver(p, ensemble):
    """``h = h_c(T)`` (``b2`` does not involve ``K``), then ``b4 = 0`` in ``K`` by Newton (``b4`` is
    linear in ``K`` for LMG4, so two steps are exact to rounding)."""
    T, J = p
    h = _critical_point(T, J)
    K = J / 4.0
    for _ in range(2):
        b4, db4 = jax.jvp(lambda k: _landau_point(h, k, T, J, ensemble).b4, (K,),
                          (jnp.ones_like(K),))
        K = K - b4 / db4
    return jnp.stack([h, K])


@functools.cache
def _tricritical_root(ensemble):
    return implicit_root(functools.partial(_tricritical_residual, ensemble=ensemble),
                         functools.partial(_tricritical_solver, ensemble=ensemble))


def _tricritical_point(T, J, ensemble):
    x = _tricritical_root(ensemble)((T, J))
    ok = jnp.all(jnp.isfinite(x))
    status = jnp.where(ok, Status.OK, Status.NO_TRANSITION).astype(jnp.int32)
    return Tricritical(h=x[0], K=x[1], status=status)


# --------------------------------------------------------------------------- coexistence


def _F(b, h, K, T, J):
    return reduced_free_energy(_MODEL, LMGCouplings(J, K), h, T, b)


def _coexistence_residual(x, p):
    """``(F'(b), F(b) - F(0))`` at ``(h, b) = x``: a stationary ferromagnet degenerate with the
    paramagnet."""
    K, T, J = p
    h, b = x[0], x[1]
    dF = jax.grad(_F)(b, h, K, T, J)
    return jnp.stack([dF, _F(b, h, K, T, J) - _F(jnp.zeros_like(b), h, K, T, J)])


def _ferro_field(Mz, K, J):
    """The molecular field ``b = -u'(Mz)`` of a stationary state."""
    return -jax.grad(_MODEL.interaction)(Mz, LMGCouplings(J, K))


def _coexistence_solver(p):
    K, T, J = p
    c = LMGCouplings(J, K)
    B = _MODEL.max_field(c)

    def bisect(_, br):
        lo, hi, Mz_lo = br
        mid = 0.5 * (lo + hi)
        Mz = canonical_point(_MODEL, c, mid, T).Mz
        f = Mz > 0
        return jnp.where(f, mid, lo), jnp.where(f, hi, mid), jnp.where(f, Mz, Mz_lo)

    zero = jnp.zeros_like(B)
    Mz0 = canonical_point(_MODEL, c, zero, T).Mz
    # Carry the ferromagnet found on the ferro side of the bracket: re-solving exactly at the
    # coexistence field would pick either phase by rounding.
    lo, hi, Mz = jax.lax.fori_loop(0, _BISECT, bisect, (zero, B, Mz0))
    b = _ferro_field(Mz, K, J)
    # First order iff the paramagnet is still locally stable where the ferromagnet stops being
    # the global minimum (at a continuous transition its stiffness vanishes there).
    kappa = paramagnetic_stiffness(_MODEL, c, lo, T)
    first = (Mz0 > 0) & (Mz > 0) & (kappa > 1e-9 * (J + K))
    x = jnp.stack([lo, b])
    for _ in range(3):  # polish the 2x2 system (bisection already gives h to ~1 ulp)
        G = _coexistence_residual(x, p)
        x = x - jnp.linalg.solve(jax.jacfwd(_coexistence_residual)(x, p), G)
    return jnp.where(first, x, jnp.nan)


_coexistence_root = implicit_root(_coexistence_residual, _coexistence_solver)


def _spinodal_residual(x, p):
    """``(F'(b), F''(b))`` at ``(h, b) = x``: the fold where the ferromagnetic minimum ends."""
    K, T, J = p
    dF = jax.grad(_F)
    return jnp.stack([dF(x[1], x[0], K, T, J), jax.grad(dF)(x[1], x[0], K, T, J)])


def _branch_field(b, K, T, J):
    """``h(b)``: the field at which ``b`` is a stationary molecular field, ``b = -u'(Mz(b, h))``.

    ``Mz(b, h) = tanh(r/T) b/r`` decreases with ``h`` so the residual increases: bisection on
    ``[0, 2J + 4K]`` (a stationary ferromagnet needs ``h <= max_field``).  NaN if there is none.
    """
    B = _MODEL.max_field(LMGCouplings(J, K))

    def g(h):
        st = field_state(b, h, T)
        return b - _ferro_field(st.Mz, K, J)

    def bisect(_, br):
        lo, hi = br
        mid = 0.5 * (lo + hi)
        up = g(mid) > 0
        return jnp.where(up, lo, mid), jnp.where(up, mid, hi)

    lo, hi = jax.lax.fori_loop(0, _BISECT, bisect, (jnp.zeros_like(B), B))
    ok = (g(jnp.zeros_like(B)) <= 0) & (g(B) >= 0)
    return jnp.where(ok, 0.5 * (lo + hi), jnp.nan)


def _spinodal_solver(p, n: int = 64):
    K, T, J = p
    B = _MODEL.max_field(LMGCouplings(J, K))
    bs = B * (jnp.arange(1, n + 1) / n) ** 2
    hs = jax.vmap(lambda b: _branch_field(b, K, T, J))(bs)
    k = jnp.nanargmax(hs)
    x = jnp.stack([hs[k], bs[k]])
    for _ in range(8):
        G = _spinodal_residual(x, p)
        x = x - jnp.linalg.solve(jax.jacfwd(_spinodal_residual)(x, p), G)
    return x


_spinodal_root = implicit_root(_spinodal_residual, _spinodal_solver)


def _coexistence_point(K, T, J):
    p = (K, T, J)
    x = _coexistence_root(p)
    h, b = x[0], x[1]
    ok = jnp.isfinite(h)
    c = LMGCouplings(J, K)
    fs = field_state(b, h, T)
    ps = field_state(jnp.zeros_like(b), h, T)
    e_f = _MODEL.interaction(fs.Mz, c) - h * fs.Mx
    e_p = _MODEL.interaction(ps.Mz, c) - h * ps.Mx
    sp = _spinodal_root(p)
    nan = lambda v: jnp.where(ok, v, jnp.nan)  # noqa: E731
    return Coexistence(
        h=h, para_spinodal=nan(_critical_point(T, J)), ferro_spinodal=nan(sp[0]),
        Mz=fs.Mz, Mx=fs.Mx, s=fs.s, energy=e_f, entropy=fs.entropy,
        Mx_para=nan(ps.Mx), s_para=nan(ps.s), energy_para=nan(e_p), entropy_para=nan(ps.entropy),
        status=jnp.where(ok, Status.OK, Status.NO_TRANSITION).astype(jnp.int32),
    )


# --------------------------------------------------------------------------- public entry points


def _batched(point_fn, *args, **static):
    """Broadcast ``args`` (NumPy rules), ``vmap`` the one-point kernel over them, reshape."""
    arrays = jnp.broadcast_arrays(*[jnp.asarray(a, jnp.float64) for a in args])
    shape = arrays[0].shape
    out = _jitted_vmap(point_fn, tuple(sorted(static.items())))(*[a.reshape(-1) for a in arrays])
    return jax.tree_util.tree_map(lambda x: x.reshape(shape), out)


@functools.cache
def _jitted_vmap(point_fn, static):
    return jax.jit(jax.vmap(functools.partial(point_fn, **dict(static))))


def _check_T_J(T, J):
    check("J", J, lower=0.0, strict=True)
    check("T", T, lower=0.0)


def critical_field(T, J=1.0):
    """Second-order (critical) field at temperature ``T``, both ensembles: eq. (25), (34)/(37).

    The exact root of ``h/(2J) = tanh(h/T)`` (the zero of the paramagnetic stiffness
    ``h coth(h/T) - 2J``), not the low-temperature form (26)/(31)/(38).  ``T = 0`` gives ``2J``.
    Outside the domain of the line (``T >= 2J``, where the paramagnet is stable at every
    ``h >= 0``) the result is NaN.  Differentiable in ``T`` and ``J`` (implicit function theorem).
    Note: where the transition is first order (``K > K_tcp(T)``) this field is the paramagnetic
    spinodal, not the transition.

    Args:
        T: temperature ``>= 0``, energy units, any shape.
        J: 2-spin coupling ``> 0``, any shape broadcasting with ``T``.
    Returns:
        ``h_c`` with the broadcast shape (NaN for ``T >= 2J``).
    Raises:
        ValueError: concrete ``T < 0``, ``J <= 0`` or non-finite values.
    """
    _check_T_J(T, J)
    return _batched(_critical_point, T, J)


def landau_coefficients(h, K, T, J=1.0, *, ensemble: str = "canonical") -> LandauCoefficients:
    """Reduced Landau coefficients ``b2, b4`` of the paramagnet (``mz = 0``), to all orders.

    Canonical (eqs. 20-23, 28): ``f(mz) = min_s f(s, mz)`` with the spin length relaxed; with
    ``w = mz²``, ``b2 = ∂f/∂w`` and ``b4 = (f_ww - f_sw²/f_ss)/2`` at the paramagnet
    ``s0 = tanh(h/T)`` (envelope and implicit function theorems; exact, by autodiff of the exact
    eq. 19).  At ``b2 = 0`` this is eq. (29) with the exact ``s0``.
    Microcanonical (eq. 33): the energy at fixed ``s = tanh(h/T)`` (eq. 37), expanded in ``mz``:
    ``b2 = hs/2 - Js²``, ``b4 = hs/8 - Ks⁴`` (eqs. 34, 35).  ``T = 0``: eq. (17), ``s = 1``.

    Args:
        h: field ``>= 0``; K: 4-spin coupling ``>= 0``; T: temperature ``>= 0``; J: ``> 0``;
            energy units, broadcastable shapes.
        ensemble: ``"canonical"`` or ``"microcanonical"``.
    Returns:
        :class:`LandauCoefficients` of the broadcast shape (energy units).
    """
    _check_ensemble(ensemble)
    _check_T_J(T, J)
    check("h", h, lower=0.0)
    check("K", K, lower=0.0)
    return _batched(_landau_point, h, K, T, J, ensemble=ensemble)


def tricritical(T, ensemble: str = "canonical", J=1.0) -> Tricritical:
    """Exact tricritical point ``(h, K)`` at temperature ``T``: ``b2 = b4 = 0``.

    Canonical: eqs. (22)-(29) solved exactly (the low-T form (32) is only asymptotic, and misses
    a ``+J e^{-4J/T}`` term); microcanonical: eqs. (34)-(35) with ``s = tanh(h/T)``, exactly
    ``K = J/(4 s²)``, ``s = h/(2J)`` (eq. 39 is its low-T form).  Both ensembles share ``h``, the
    critical field.  At ``T = 0``: ``(2J, J/4)``.  For ``T >= 2J`` there is no tricritical point
    at ``h > 0``: NaN with status ``NO_TRANSITION``.  Differentiable in ``T`` and ``J``.

    Args:
        T: temperature ``>= 0``, any shape; J: ``> 0``, broadcastable.
        ensemble: ``"canonical"`` or ``"microcanonical"``.
    Returns:
        :class:`Tricritical` ``(h, K, status)`` of the broadcast shape.
    """
    _check_ensemble(ensemble)
    _check_T_J(T, J)
    return _batched(_tricritical_point, T, J, ensemble=ensemble)


def coexistence(K, T=0.0, J=1.0) -> Coexistence:
    """Canonical first-order transition along ``h`` at fixed ``(K, T)``: field, spinodals and the
    two coexisting states (eq. 19; the exact version of eq. 18 and of the lines Fig. 2 sketches).

    The field where the ferromagnet stops being the global minimum is bracketed by bisection on
    the canonical engine's global minimum, then ``F'(b) = 0, F(b) = F(0)`` is solved by Newton.
    Where the transition along ``h`` is continuous (``K < K_tcp(T)``; within ~1e-9 of the
    tricritical point the two are not distinguished) or absent, all fields are NaN with status
    ``NO_TRANSITION``.  Differentiable in ``K, T, J`` by the implicit function theorem; the slope
    obeys Clausius-Clapeyron, ``dh/dT = -ΔS/ΔMx``.

    Args:
        K: 4-spin coupling ``>= 0``; T: temperature ``>= 0``; J: ``> 0``; energy units,
            broadcastable shapes.
    Returns:
        :class:`Coexistence` of the broadcast shape.
    """
    _check_T_J(T, J)
    check("K", K, lower=0.0)
    return _batched(_coexistence_point, K, T, J)


def first_order_field(K, T=0.0, J=1.0):
    """Canonical first-order (coexistence) field ``h1(K, T)``; ``T = 0``: the exact ground-state
    line of Fig. 1 (eq. 18 is its expansion near the tricritical point ``(K, h) = (J/4, 2J)``).

    NaN where the transition along ``h`` is not first order.  Shapes, units, differentiability:
    see :func:`coexistence`, of which this is the ``h`` field (without the spinodals, so cheaper).
    """
    _check_T_J(T, J)
    check("K", K, lower=0.0)
    return _batched(_first_order_point, K, T, J)


def _first_order_point(K, T, J):
    return _coexistence_root((K, T, J))[0]


def _check_ensemble(ensemble):
    if ensemble not in ENSEMBLES:
        raise ValueError(f"ensemble must be one of {ENSEMBLES}, got {ensemble!r}")
