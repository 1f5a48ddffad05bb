"""Canonical engine: global minimum of the mean-field free energy, eq. (19), over (s, θ, φ).

Design (one point, then ``vmap`` in one place):

1.  **Exact reduction to one variable.**  For ``h >= 0`` the optimum has ``φ = 0``.  At fixed
    ``Mz`` the free energy is convex in ``Mx``, and the inner optima are the states of a free spin
    in the field ``(h, 0, b)`` (:func:`jaxlmg._model.field_state`).  The global minimum of eq. (19)
    is therefore the global minimum of the closed-form scalar function
    ``F(b) = u(Mz(b)) - h Mx(b) - T S(s(b))`` over ``0 <= b <= max_field``.
2.  **Global search.**  ``F`` is evaluated on a scan of ``n_scan`` fields that is uniform-ish in
    the order parameter (dense near ``Mz = 0`` so that minima close to a tricritical point are
    resolved); every discrete local minimum is counted (``n_minima``).
3.  **Polish.**  The two lowest discrete minima are refined by safeguarded Newton steps
    (autodiff ``F'``, ``F''``, bisection fallback inside the bracket) to machine precision; the
    lower one is returned.  The paramagnetic point ``b = 0`` is one of the scan points, and is
    exactly stationary for Z₂-symmetric models.
"""

from __future__ import annotations

import functools
import warnings
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from ._model import field_state
from ._status import Status
from ._validate import check
from .models import LMG4, CollectiveSpinModel, LMGCouplings

__all__ = ["CanonicalState", "GroundState", "canonical", "canonical_state", "ground_state"]

N_SCAN = 32
N_NEWTON = 4
_MAX_EXTRA = 60


class CanonicalState(NamedTuple):
    """Canonical equilibrium at each grid point (all fields have the broadcast shape of the inputs).

    Attributes:
        s: spin length in [0, 1].
        mz: ``cosθ >= 0`` (the paper's m_z; 0 where ``s = 0``).
        Mz: ``s cosθ``, magnetization per spin along z (the order parameter).
        Mx: ``s sinθ cosφ``, magnetization per spin along the field.
        f: free energy per spin, eq. (19) (energy units).
        energy: energy per spin ``e``, eq. (13).
        entropy: entropy per spin ``S(s)``, eq. (14), nats.
        n_minima: number of distinct local minima of the landscape found by the global scan
            (``Mz >= 0`` branch for Z₂-symmetric models); 2 signals metastability.
        status: :class:`jaxlmg.Status` code per point; fields are NaN where it is not ``OK``.
    """

    s: Any
    mz: Any
    Mz: Any
    Mx: Any
    f: Any
    energy: Any
    entropy: Any
    n_minima: Any
    status: Any


class GroundState(NamedTuple):
    """``T = 0`` state (Fig. 1): ``s = 1``, ``mz``, ``Mz``, ``Mx`` and the energy per spin."""

    s: Any
    mz: Any
    Mz: Any
    Mx: Any
    energy: Any
    status: Any


# --------------------------------------------------------------------------- one point


def reduced_free_energy(model: CollectiveSpinModel, couplings, h, T, b):
    """``F(b)``: eq. (19) minimized over ``Mx`` at the ``Mz`` of the mean field ``b`` (scalar)."""
    st = field_state(b, h, T)
    return model.interaction(st.Mz, couplings) - h * st.Mx - st.TS


def scan_fields(model: CollectiveSpinModel, couplings, h, T, n_scan: int):
    """The fields ``b`` of the global scan, increasing, ending at ``model.max_field``.

    Built from ``v`` (≈ the order parameter it produces, dense near 0) through
    ``b(v) = h v/sqrt(1-v²) + T artanh(v)``, which gives ``Mz = v`` exactly at ``T = 0`` or at
    ``h = 0`` and ``Mz`` within a factor of order one of ``v`` otherwise.
    """
    B = model.max_field(couplings)
    t = jnp.linspace(0.0, 1.0, n_scan, dtype=jnp.result_type(h, T))
    v = t * t * (1.0 - 1e-12)
    b = h * v / jnp.sqrt((1.0 - v) * (1.0 + v)) + T * jnp.arctanh(v)
    # Fields beyond B produce no stationary point: spread those scan points evenly over the
    # remaining interval (last field below B, B] instead, so that no two scan points coincide.
    clipped = (b >= B).at[-1].set(True)
    k = jnp.sum(~clipped)
    b_last = jnp.max(jnp.where(clipped, 0.0, b))
    frac = ((jnp.arange(n_scan) - k + 1) / (n_scan - k)).astype(b.dtype)
    b = jnp.where(clipped, b_last + (B - b_last) * frac, b)
    if not model.z2_symmetric:
        b = jnp.concatenate([-b[:0:-1], b])
    return b


def minimize_1d(F, b0, lo, hi, n_iter: int = N_NEWTON, observable=None, active=True):
    """Safeguarded Newton minimization of a smooth scalar ``F`` in the bracket ``[lo, hi]``.

    ``n_iter`` Newton steps with autodiff ``F'``/``F''`` (a step that leaves the bracket or meets
    negative curvature becomes a bisection on the sign of ``F'``), then one more step whose size
    certifies convergence.  A fixed step count keeps every lane of a ``vmap`` busy (no
    ``while_loop`` waiting for the slowest point); from the parabolic start of the scan, Newton
    converges quadratically in 2-3 steps, so ``n_iter = 4`` leaves a wide margin.

    Returns:
        ``(b, converged)``: converged when the last Newton step is below ``1e-8 (1 + |b|)``
        (quadratic convergence: the error after it is ~1e-16), or when it can no longer change
        ``F`` by more than ``1e-3 eps (1 + |F|)`` (a degenerate, critical minimum, where Newton is
        only linear in ``b`` but ``F`` is exact), or when it changes ``observable(b)`` (a
        pytree of the physical outputs, e.g. the magnetization) by at most ``1e-10`` (a saturated
        state, where ``F`` and the outputs no longer depend on ``b``).  Lanes that have not
        converged after ``n_iter`` steps continue (at most 60 more) while ``active``.
    """
    one = jnp.ones_like(b0)
    eps = jnp.finfo(b0.dtype).eps

    def dF(b):
        return jax.jvp(F, (b,), (one,))[1]

    def step(carry, _):  # forward-over-forward: the cheapest exact F', F'' of a scalar function
        b, lo, hi = carry
        g, H = jax.jvp(dF, (b,), (one,))
        lo = jnp.where(g < 0, b, lo)
        hi = jnp.where(g > 0, b, hi)
        newton = b - g / jnp.where(H > 0, H, 1.0)
        use_newton = (H > 0) & (newton >= lo) & (newton <= hi)
        bn = jnp.where(use_newton, newton, 0.5 * (lo + hi))
        bn = jnp.where(g == 0, b, bn)
        return (bn, lo, hi), (bn - b, g)

    def converged(b, db, g):
        ok = jnp.abs(db) <= 1e-8 * (1.0 + jnp.abs(b))
        ok = ok | (jnp.abs(g * db) <= 1e-3 * eps * (1.0 + jnp.abs(F(b))))
        if observable is not None:
            before, after = observable(b - db), observable(b)
            change = jax.tree_util.tree_map(lambda x, y: jnp.max(jnp.abs(x - y)), before, after)
            ok = ok | (jnp.max(jnp.stack(jax.tree_util.tree_leaves(change))) <= 1e-10)
        return ok

    carry = (b0, lo, hi)
    for _ in range(n_iter + 1):  # unrolled: n_iter is small and static
        carry, (db, g) = step(carry, None)

    # Rare slow cases (a nearly quartic minimum next to a critical line, where Newton is only
    # linear) continue in a loop; under vmap only batches that contain such a point pay for it.
    def more(c):
        it, carry, db, g = c
        return (it < _MAX_EXTRA) & active & ~converged(carry[0], db, g)

    def again(c):
        it, carry, _, _ = c
        carry, (db, g) = step(carry, None)
        return it + 1, carry, db, g

    _, carry, db, g = jax.lax.while_loop(more, again, (0, carry, db, g))
    b = carry[0]
    return b, converged(b, db, g)


def _discrete_minima(Fs, symmetric: bool):
    """Mask of the discrete local minima of a scan (ties resolved so that a plateau counts once)."""
    inf = jnp.full((1,), jnp.inf, Fs.dtype)
    left = jnp.concatenate([Fs[1:2] if symmetric else inf, Fs[:-1]])
    right = jnp.concatenate([Fs[1:], inf])
    if symmetric:
        # b = 0 is a mirror point: it is a minimum iff F rises strictly on both sides.
        left = left.at[0].set(jnp.inf)
    return (Fs <= left) & (Fs < right)


def _parabola_vertex(bs, Fs, idx, fallback):
    """Vertex of the parabola through the scan points ``idx - 1, idx, idx + 1`` (``fallback``
    where it is not a convex parabola or ``idx`` is at an end of the scan)."""
    n = bs.shape[0]
    im, ip = jnp.maximum(idx - 1, 0), jnp.minimum(idx + 1, n - 1)
    x0, x1, x2 = bs[im], bs[idx], bs[ip]
    y0, y1, y2 = Fs[im], Fs[idx], Fs[ip]
    d01 = (y1 - y0) / jnp.where(x1 != x0, x1 - x0, 1.0)
    d12 = (y2 - y1) / jnp.where(x2 != x1, x2 - x1, 1.0)
    curv = (d12 - d01) / jnp.where(x2 != x0, x2 - x0, 1.0)
    interior = (idx > 0) & (idx < n - 1) & (curv > 0) & jnp.isfinite(curv)
    vertex = 0.5 * (x0 + x1) - d01 / jnp.where(interior, 2.0 * curv, 1.0)
    return jnp.where(interior, vertex, fallback)


def paramagnetic_stiffness(model: CollectiveSpinModel, couplings, h, T):
    """``u''(0) + h coth(h/T)``: curvature of the reduced landscape ``g(Mz)`` at ``Mz = 0``.

    ``h coth(h/T)`` is the inverse transverse susceptibility of a free spin (``T`` at ``h = 0``,
    ``h`` at ``T = 0``).  Its zero is the second-order line; for LMG4 it is eq. (25),
    ``h/(2J) = tanh(h/T)``.
    """
    upp = jax.grad(jax.grad(lambda m: model.interaction(m, couplings)))(jnp.zeros_like(h))
    x = h / jnp.where(T > 0, T, 1.0)
    small = x < 1e-4
    xs = jnp.where(small, 1.0, x)
    coth_term = jnp.where(small, T * (1.0 + x * x / 3.0), h / jnp.tanh(xs))  # h coth(h/T)
    kappa = jnp.where(T > 0, coth_term, h)
    return upp + kappa


def canonical_point(model: CollectiveSpinModel, couplings, h, T, n_scan: int = N_SCAN):
    """Canonical equilibrium at ONE point; scalars in, :class:`CanonicalState` of scalars out."""
    F = functools.partial(reduced_free_energy, model, couplings, h, T)
    bs = scan_fields(model, couplings, h, T, n_scan)
    Fs = jax.vmap(F)(bs)
    is_min = _discrete_minima(Fs, model.z2_symmetric)
    n = bs.shape[0]
    lo_b = bs[jnp.maximum(jnp.arange(n) - 1, 0)]
    hi_b = bs[jnp.minimum(jnp.arange(n) + 1, n - 1)]
    b0s = bs
    if model.z2_symmetric:
        # The paramagnet b = 0 is stationary; it is a local minimum iff its stiffness
        # u''(0) + h coth(h/T) (inverse transverse susceptibility, exact) is positive.  If it is
        # not, yet F(b_1) > F(0), a ferromagnetic minimum lies in (0, b_1): search it there.
        # (At zero stiffness, a critical point, the paramagnet is kept as a candidate too.)
        para_stable = paramagnetic_stiffness(model, couplings, h, T) >= 0
        is_min = is_min.at[0].set(para_stable | (Fs[1] > Fs[0]))
        # That minimum can sit anywhere in (0, b_1) (close to the critical line it is tiny), so
        # locate it on a geometric grid b_1 4^-k first and bracket it by its neighbours.
        sub = bs[1] * 0.25 ** jnp.arange(1, 11, dtype=bs.dtype)
        j = jnp.argmin(jax.vmap(F)(sub))
        sub_hi = jnp.where(j > 0, sub[jnp.maximum(j - 1, 0)], bs[1])
        sub_lo = jnp.where(j < sub.shape[0] - 1, sub[jnp.minimum(j + 1, sub.shape[0] - 1)], 0.0)
        b0s = b0s.at[0].set(jnp.where(para_stable, 0.0, sub[j]))
        lo_b = lo_b.at[0].set(jnp.where(para_stable, 0.0, sub_lo))
        hi_b = hi_b.at[0].set(jnp.where(para_stable, 0.0, sub_hi))
    n_minima = jnp.sum(is_min).astype(jnp.int32)

    # Polish the two lowest discrete minima, each inside the bracket of its scan neighbours,
    # starting from the vertex of the parabola through the three scan points around it.
    score = jnp.where(is_min, Fs, jnp.inf)
    _, idx = jax.lax.top_k(-score, 2)
    b0 = jnp.clip(_parabola_vertex(bs, Fs, idx, b0s[idx]), lo_b[idx], hi_b[idx])
    def magnetization(b):
        st = field_state(b, h, T)
        return st.Mx, st.Mz

    b_star, ok = jax.vmap(
        lambda b0, lo, hi, act: minimize_1d(F, b0, lo, hi, observable=magnetization, active=act)
    )(b0, lo_b[idx], hi_b[idx], jnp.isfinite(score[idx]))
    F_star = jax.vmap(F)(b_star)
    F_star = jnp.where(jnp.isfinite(score[idx]), F_star, jnp.inf)
    if model.z2_symmetric:
        # The paramagnet is exact; a ferromagnet within rounding of it (at a critical or
        # tricritical point, F - F_para ~ Mz^4 or Mz^6 < eps) is not a distinct phase.
        is_para = (b_star == 0) & jnp.isfinite(F_star)
        tie = 4 * jnp.finfo(F_star.dtype).eps * (1.0 + jnp.abs(F_star))
        F_star = jnp.where(is_para, F_star - jnp.where(is_para, tie, 0.0), F_star)
    k = jnp.argmin(F_star)
    b = b_star[k]
    if model.z2_symmetric:
        b = jnp.abs(b)
    st = field_state(b, h, T)
    e = model.interaction(st.Mz, couplings) - h * st.Mx
    f = e - st.TS

    status = jnp.where(ok[k], Status.OK, Status.NOT_CONVERGED)
    status = jnp.where(jnp.isfinite(f) & jnp.isfinite(b), status, Status.NONFINITE)
    domain_ok = (h >= 0) & (T >= 0) & jnp.isfinite(h) & jnp.isfinite(T)
    status = jnp.where(domain_ok, status, Status.OUT_OF_DOMAIN).astype(jnp.int32)
    good = status == Status.OK
    nan = lambda x: jnp.where(good, x, jnp.nan)  # noqa: E731
    mz = jnp.where(st.s > 0, st.Mz / jnp.where(st.s > 0, st.s, 1.0), 0.0)
    return CanonicalState(
        s=nan(st.s), mz=nan(mz), Mz=nan(st.Mz), Mx=nan(st.Mx), f=nan(f), energy=nan(e),
        entropy=nan(st.entropy), n_minima=jnp.where(good, n_minima, 0), status=status,
    )


# --------------------------------------------------------------------------- batched entry points


@functools.partial(jax.jit, static_argnames=("model", "n_scan", "batch_size"))
def _canonical_flat(model, couplings, h, T, n_scan, batch_size):
    def one(args):
        c, hh, TT = args
        return canonical_point(model, c, hh, TT, n_scan)

    return jax.lax.map(one, (couplings, h, T), batch_size=batch_size)


def canonical_state(model: CollectiveSpinModel, couplings, h, T, *, n_scan: int = N_SCAN,
                    batch_size: int = 4096) -> CanonicalState:
    """Canonical equilibrium of any :class:`CollectiveSpinModel`, batched over a broadcast grid.

    Args:
        model: the model (static; e.g. ``LMG4()``).
        couplings: the model's couplings, a pytree whose leaves broadcast with ``h`` and ``T``.
        h: transverse field, ``>= 0``, any shape.
        T: temperature, ``>= 0``, any shape (``T = 0`` gives the ground state).
        n_scan: fields in the global scan (more = safer global search, slower).
        batch_size: points evaluated together (bounds memory; results do not depend on it).
    Returns:
        :class:`CanonicalState` with the broadcast shape of ``(couplings..., h, T)``.
    """
    leaves, treedef = jax.tree_util.tree_flatten(couplings)
    arrays = [jnp.asarray(x) for x in (*leaves, h, T)]
    dtype = jnp.result_type(*arrays)
    dtype = dtype if jnp.issubdtype(dtype, jnp.floating) else jnp.result_type(float)
    arrays = jnp.broadcast_arrays(*[a.astype(dtype) for a in arrays])
    shape = arrays[0].shape
    flat = [a.reshape(-1) for a in arrays]
    c = jax.tree_util.tree_unflatten(treedef, flat[:-2])
    size = max(flat[0].shape[0], 1)
    out = _canonical_flat(model, c, flat[-2], flat[-1], n_scan, min(batch_size, size))
    return jax.tree_util.tree_map(lambda x: x.reshape(shape), out)


def _precision(precision: str, *arrays):
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


def canonical(h, K, T, J=1.0, *, precision: str = "float64",
              n_scan: int = N_SCAN) -> CanonicalState:
    """Canonical mean-field equilibrium of the extended LMG model (eqs. 1, 13, 14, 19).

    Minimizes ``f = e(s, θ, φ) - T S(s)`` globally over ``(s, θ, φ)`` at every point of the
    broadcast grid of ``h, K, T, J`` (NumPy broadcasting), reporting the ``mz >= 0`` branch.

    Args:
        h: transverse field, energy units, ``h >= 0``; any shape.
        K: 4-spin coupling, energy units, ``K >= 0``; any shape.
        T: temperature, energy units (k_B = 1), ``T >= 0``; any shape; ``T = 0`` is the ground
            state.
        J: 2-spin coupling, ``J > 0``; any shape.
        precision: ``"float64"`` (default) or ``"float32"`` (warns: not enough for tricritical
            physics).
        n_scan: fields in the global scan.
    Returns:
        :class:`CanonicalState` (``s, mz, Mz, Mx, f, energy, entropy, n_minima, status``) of the
        broadcast shape.
    Raises:
        ValueError: a concrete argument is non-finite or outside its range (named in the message).
    """
    check("J", J, lower=0.0, strict=True)
    check("h", h, lower=0.0)
    check("K", K, lower=0.0)
    check("T", T, lower=0.0)
    h, K, T, J = _precision(precision, h, K, T, J)
    return canonical_state(LMG4(), LMGCouplings(J, K), h, T, n_scan=n_scan)


def ground_state(h, K, J=1.0, *, n_scan: int = N_SCAN) -> GroundState:
    """Ground state (``T = 0``) of the extended LMG model, Fig. 1 and eq. (17).

    The energy eq. (13) is minimized globally on ``s = 1`` over the direction.

    Args:
        h: transverse field ``>= 0``; K: 4-spin coupling ``>= 0``; J: 2-spin coupling ``> 0``;
            energy units, any broadcastable shapes.
    Returns:
        :class:`GroundState` (``s = 1, mz, Mz, Mx, energy, status``) of the broadcast shape.
    """
    check("J", J, lower=0.0, strict=True)
    check("h", h, lower=0.0)
    check("K", K, lower=0.0)
    h, K, J = _precision("float64", h, K, J)
    st = canonical_state(LMG4(), LMGCouplings(J, K), h, jnp.zeros_like(h), n_scan=n_scan)
    return GroundState(s=st.s, mz=st.mz, Mz=st.Mz, Mx=st.Mx, energy=st.energy, status=st.status)
