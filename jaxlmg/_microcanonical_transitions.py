"""MCE energy scans: all states at a temperature, and first-order transitions (issues #3, #4).

Both questions are answered from one scan of the microcanonical engine over the spectrum
``[eps_min, eps_max]`` of each ``(h, couplings)`` (:func:`jaxlmg._microcanonical.energy_scan`),
so they share one compiled program (:func:`_analysis_chunk`, also behind
:func:`jaxlmg.ensemble_agreement`).

*States at a temperature* (eqs. 16, 36): every energy with ``β(ε) = 1/T``; sign changes of
``β - 1/T`` on the scan, each polished by safeguarded Newton with the exact ``dβ/dε``; a bracket
across a jump of β (an MCE first-order transition) holds no root and is discarded.

*MCE first-order transitions*: the state at energy ``ε`` is the global minimum of the squared spin
length on the shell, ``s²(m; ε) = m² + ((u(m) - ε)/h)²``.  A first-order transition is an energy
``ε_t`` where ``s²(·; ε_t)`` has two distinct global minima ``m₁ ≠ m₂``: two states of equal entropy
``σ(ε_t)`` and different ``Mz``.  σ is the upper envelope of the two branches there: a convex kink,
β jumps *up* with increasing energy, the temperature drops from ``T_below`` to ``T_above``.
The largest jump of ``Mz`` on the scan (preferring the metastable range, where two entropy maxima
exist) is bracketed, a fixed number of bisections (MCE solves) shrinks the bracket to rounding (a
jump persists, a continuous change closes up), and Newton on the three equations
``∂s²/∂m(m₁) = ∂s²/∂m(m₂) = 0``, ``s²(m₁) = s²(m₂)`` in ``z = (m₁, m₂, ε)`` (autodiff Jacobian),
started from the two global minima found at the ends of the bracket, gives ``ε_t`` to machine
precision.  Outputs are differentiable in ``(h, couplings)`` by the implicit function theorem on
the same equations (``jax.custom_jvp``), never through the iterations.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ._batch import broadcast_flat
from ._microcanonical import (
    N_EPS,
    N_SCAN,
    EnergyScan,
    MicrocanonicalState,
    _observables,
    _repeat,
    _root_1d,
    call_compiled,
    energy_scan,
    microcanonical_point,
    run_chunked,
    shell_s2,
)
from ._model import entropy
from ._status import Status
from ._validate import as_precision, check
from .models import LMG4, CollectiveSpinModel, LMGCouplings

__all__ = [
    "MicrocanonicalTransition",
    "TemperatureSolutions",
    "microcanonical_at_temperature",
    "microcanonical_first_order",
    "microcanonical_first_order_state",
    "microcanonical_temperature_state",
]

N_T_ITER = 12  # safeguarded Newton steps on beta(eps) = 1/T (each an MCE solve)
N_BISECT = 56  # halvings of a scan interval around a jump of Mz: down to rounding of eps
N_COEX_NEWTON = 8  # Newton steps on the 3x3 coexistence system (quadratic from the bisection)
MIN_JUMP = 1e-6  # smallest |Mz jump| reported (resolution of a jump next to a tricritical point)
CHUNK = 32  # parameter points per call of the compiled analysis (one shape: one compilation)


class TemperatureSolutions(NamedTuple):
    """All microcanonical states of temperature ``T`` (see :func:`microcanonical_at_temperature`).

    Attributes:
        eps: energies per spin, shape ``(..., max_solutions)``, increasing, NaN-padded.
        state: :class:`MicrocanonicalState` at those energies, fields ``(..., max_solutions)``;
            unused slots have ``status == Status.NO_TRANSITION`` ("no such state") and NaNs.
        n_solutions: number of energies with ``β(ε) = 1/T`` found (may exceed ``max_solutions``,
            then only the lowest ``max_solutions`` energies are returned), shape ``(...)``.
        status: per point: ``OK``, ``NOT_CONVERGED`` (no root could be certified) or a domain code.
    """

    eps: Any
    state: MicrocanonicalState
    n_solutions: Any
    status: Any


class MicrocanonicalTransition(NamedTuple):
    """An MCE first-order transition at fixed ``(h, couplings)`` (fields: broadcast shape).

    ``below``/``above`` label the two coexisting states by the side of ``eps`` on which each is
    the equilibrium (``below`` = lower energies); ``beta_below < beta_above`` (convex kink of σ).

    Attributes:
        eps: transition energy per spin ``ε_t``.
        entropy: ``σ(ε_t)``, equal for both states (nats per spin).
        s: common spin length.
        Mz_below, Mz_above: order parameters of the two states (``>= 0``).
        Mx_below, Mx_above: their transverse magnetizations.
        beta_below, beta_above: ``dσ/dε`` on each branch at ``ε_t``.
        temperature_below, temperature_above: ``1/β``; the MCE temperature drops from
            ``temperature_below`` to ``temperature_above`` as the energy crosses ``ε_t``.
        status: ``OK``; ``NO_TRANSITION`` (no jump of ``Mz`` larger than ``MIN_JUMP``, e.g. only a
            continuous transition, or ``h = 0``); ``NOT_CONVERGED``; a domain code.  NaN fields
            unless ``OK``.
    """

    eps: Any
    entropy: Any
    s: Any
    Mz_below: Any
    Mz_above: Any
    Mx_below: Any
    Mx_above: Any
    beta_below: Any
    beta_above: Any
    temperature_below: Any
    temperature_above: Any
    status: Any


def coexistence_residual(model: CollectiveSpinModel, couplings, h, z):
    """``G(z)`` for ``z = (m₁, m₂, ε)``: ``[∂s²/∂m(m₁), ∂s²/∂m(m₂), s²(m₁) - s²(m₂)]`` at ``ε``."""
    m1, m2, e = z[0], z[1], z[2]
    F = lambda m: shell_s2(model, couplings, h, e, m)  # noqa: E731
    dF = jax.grad(F)
    return jnp.stack([dF(m1), dF(m2), F(m1) - F(m2)])


@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def _coexistence(model, couplings, h, z):
    """Identity on a solved ``z``; its JVP is the implicit function theorem on
    :func:`coexistence_residual` (derivatives never go through the iterations)."""
    return z


@_coexistence.defjvp
def _coexistence_jvp(model, primals, tangents):
    couplings, h, z = primals
    dc, dh, _ = tangents
    z = _coexistence(model, couplings, h, z)  # higher derivatives apply this rule again
    G_z = jax.jacfwd(lambda zz: coexistence_residual(model, couplings, h, zz))(z)
    G_dot = jax.jvp(lambda c, hh: coexistence_residual(model, c, hh, z), (couplings, h),
                    (dc, dh))[1]
    return z, -jnp.linalg.solve(G_z, G_dot)


# ------------------------------------------------------------------------ states at a temperature


def _beta_roots(model, c, h, target, a, b, fa, fb, n_scan: int):
    """Polish roots of ``β(ε) = target`` in brackets ``[a, b]`` (flat lanes, one vmap level).

    ``fa``, ``fb``: ``β - target`` at the ends (may be ±inf at the edges of the spectrum).
    Returns ``(eps, is_root, state)``: ``is_root`` is false for a bracket across a jump of β
    (an MCE first-order transition) or a solve that failed.
    """
    dtype = a.dtype

    def one(c, h, bT, a, b, ra, rb):
        def fd(e):
            p = microcanonical_point(model, c, h, e, n_scan)
            return p.state.beta - bT, p.dbeta, p.state

        fa_, fb_ = jnp.where(jnp.isfinite(ra), ra, 0.0), jnp.where(jnp.isfinite(rb), rb, 0.0)
        den = jnp.where(fa_ != fb_, fa_ - fb_, 1.0)
        x0 = jnp.where(jnp.isfinite(ra) & jnp.isfinite(rb), a + fa_ * (b - a) / den, 0.5 * (a + b))
        x0 = jnp.clip(x0, jnp.minimum(a, b), jnp.maximum(a, b))
        aux0 = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype),
                                      jax.eval_shape(lambda e: fd(e)[2], x0))
        e, f, d, state, conv, width = _root_1d(fd, x0, a, b, ra < 0, N_T_ITER, unroll=False,
                                               aux0=aux0)
        ulp = 8 * jnp.finfo(dtype).eps * (jnp.abs(a) + jnp.abs(b))
        # A root, not a jump of β: the residual is within what the slope allows over the bracket.
        is_root = jnp.abs(f) <= 1e-9 * (1.0 + jnp.abs(bT)) + jnp.abs(d) * (width + ulp)
        is_root = is_root & jnp.isfinite(f) & (state.status == Status.OK)
        state = state._replace(status=jnp.where(conv, state.status, Status.NOT_CONVERGED))
        return e, is_root, state

    return jax.vmap(one)(c, h, target, a, b, fa, fb)


def _temperature_solutions(model, c, h, T, scan: EnergyScan, max_solutions: int,
                           n_scan: int) -> TemperatureSolutions:
    """All energies with ``β(ε) = 1/T`` for each of ``P`` points (flat ``c``, ``h``, ``T``)."""
    P, n = scan.eps.shape
    bT = jnp.where(T != 0, 1.0 / jnp.where(T != 0, T, 1.0), jnp.inf)
    r = scan.beta - bT[:, None]
    valid = scan.ok[:, :-1] & scan.ok[:, 1:]
    cross = valid & ((r[:, :-1] > 0) != (r[:, 1:] > 0)) & jnp.isfinite(bT)[:, None]
    n_cand = max_solutions + 2  # a bracket across an MCE temperature jump holds no root
    ii = jax.vmap(lambda row: jnp.nonzero(row, size=n_cand, fill_value=0)[0])(cross)
    used = jnp.arange(n_cand)[None, :] < jnp.sum(cross, axis=1)[:, None]
    take = lambda x, j: jnp.take_along_axis(x, j, axis=1).reshape(-1)  # noqa: E731
    e_c, root_c, st_c = _beta_roots(
        model, _repeat(c, n_cand), jnp.repeat(h, n_cand), jnp.repeat(bT, n_cand),
        take(scan.eps, ii), take(scan.eps, ii + 1), take(r, ii), take(r, ii + 1), n_scan)
    e_c, root_c, st_c = jax.tree_util.tree_map(lambda x: x.reshape(P, n_cand), (e_c, root_c, st_c))

    def assemble(e_c, keep, st_c, scan_state0, eps_min, rng_status, T):
        n_solutions = jnp.sum(keep).astype(jnp.int32)
        order = jnp.argsort(jnp.where(keep, e_c, jnp.inf))[:max_solutions]
        slot = keep[order]
        eps_sol = jnp.where(slot, e_c[order], jnp.nan)
        state = jax.tree_util.tree_map(
            lambda x: jnp.where(slot, x[order],
                                jnp.nan if jnp.issubdtype(x.dtype, jnp.floating) else 0), st_c)
        state = state._replace(
            status=jnp.where(slot, state.status, Status.NO_TRANSITION).astype(jnp.int32))
        # T = 0: the ground state, at eps_min (the bottom point of the scan).
        zero_T = T == 0
        first = (jnp.arange(max_solutions) == 0) & zero_T
        eps_sol = jnp.where(zero_T, jnp.where(first, eps_min, jnp.nan), eps_sol)
        state = jax.tree_util.tree_map(lambda x, y: jnp.where(first, y, x), state, scan_state0)
        n_solutions = jnp.where(zero_T, 1, n_solutions)
        status = jnp.where(n_solutions > 0, Status.OK, Status.NOT_CONVERGED)
        status = jnp.where(rng_status == Status.OK, status, rng_status)
        status = jnp.where(jnp.isfinite(T), status, Status.NONFINITE).astype(jnp.int32)
        good = status == Status.OK
        return TemperatureSolutions(eps=jnp.where(good, eps_sol, jnp.nan), state=state,
                                    n_solutions=jnp.where(good, n_solutions, 0), status=status)

    state0 = jax.tree_util.tree_map(lambda x: x[:, 0], scan.state)
    return jax.vmap(assemble)(e_c, used & root_c, st_c, state0, scan.rng.eps_min,
                              scan.rng.status, T)


# ----------------------------------------------------------------------- first-order transitions


def _bisect_jump(model, c, h, a, b, m_a, m_b, n_scan: int):
    """Shrink ``[a, b]`` around the jump of ``Mz(ε)`` (one lane; fixed ``N_BISECT`` MCE solves)."""

    def body(_, carry):
        a, b, m_a, m_b = carry
        mid = 0.5 * (a + b)
        m = microcanonical_point(model, c, h, mid, n_scan).state.Mz
        left = jnp.abs(m - m_a) <= jnp.abs(m - m_b)  # mid is on a's branch: jump in [mid, b]
        return (jnp.where(left, mid, a), jnp.where(left, b, mid),
                jnp.where(left, m, m_a), jnp.where(left, m_b, m))

    return jax.lax.fori_loop(0, N_BISECT, body, (a, b, m_a, m_b))


def _solve_coexistence(model, c, h, z0):
    """Newton on :func:`coexistence_residual` from ``z0`` (unrolled, cheap).  Returns
    ``(z, converged)``."""
    G = lambda z: coexistence_residual(model, c, h, z)  # noqa: E731
    z, dz = z0, jnp.zeros_like(z0)
    for _ in range(N_COEX_NEWTON):
        J = jax.jacfwd(G)(z)
        dz = -jnp.linalg.solve(J, G(z))
        dz = jnp.where(jnp.all(jnp.isfinite(dz)), dz, 0.0)
        z = z + dz
    scale = 1.0 + jnp.abs(z)
    # Converged: a negligible last step, or, near an MCE tricritical point where the system is
    # ill-conditioned (cond(J) up to ~1e7 a few 1e-3 from it), a residual at rounding level (G is
    # O(1) there) with steps that are rounding noise times cond(J), below 1e-6: z is then as
    # accurate as the conditioning allows.
    small_step = jnp.all(jnp.abs(dz) <= 1e-10 * scale)
    at_rounding = (jnp.max(jnp.abs(G(z))) <= 64 * jnp.finfo(z.dtype).eps) \
        & jnp.all(jnp.abs(dz) <= 1e-6 * scale)
    converged = (small_step | at_rounding) & jnp.all(jnp.isfinite(z))
    return z, converged


class _Coexistence(NamedTuple):
    z: Any  # (m_1, m_2, eps_t), signed m
    found: Any  # a certified jump
    converged: Any


def _first_order_search(model, c, h, scan: EnergyScan, n_scan: int) -> _Coexistence:
    """Locate the MCE first-order transition of each of ``P`` points (flat ``c``, ``h``; one vmap
    level; not differentiated)."""
    c, h = jax.lax.stop_gradient((c, h))
    Mz = jnp.where(scan.state.status == Status.OK, scan.state.Mz, jnp.nan)
    jump = jnp.abs(jnp.diff(Mz, axis=1))
    jump = jnp.where(jnp.isfinite(jump), jump, 0.0)
    # Prefer intervals inside the metastable range (two entropy maxima at an end): the jump lies
    # there, while a steep but continuous Mz(eps) next to it may change more per scan step.
    two = scan.state.n_maxima >= 2
    meta = two[:, :-1] | two[:, 1:]
    i = jnp.argmax(jnp.where(meta, 2.0, 0.0) + jnp.minimum(jump, 1.0), axis=1)
    pick = lambda x: jnp.take_along_axis(x, i[:, None], axis=1)[:, 0]  # noqa: E731
    a, b = pick(scan.eps[:, :-1]), pick(scan.eps[:, 1:])
    m_a, m_b, jump0 = pick(Mz[:, :-1]), pick(Mz[:, 1:]), pick(jump)

    def one(c, h, a, b, m_a, m_b, jump0):
        a, b, m_a, m_b = _bisect_jump(model, c, h, a, b, m_a, m_b, n_scan)
        z, conv = _solve_coexistence(model, c, h, jnp.stack([m_a, m_b, 0.5 * (a + b)]))
        m1, m2, e = z[0], z[1], z[2]
        F = lambda m: shell_s2(model, c, h, e, m)  # noqa: E731
        d2F = jax.grad(jax.grad(F))
        s2 = F(m1)
        # Certify: a jump that survived the bisection, two distinct local minima on the shell,
        # and the pair is the global one: Newton stayed on the two states the MCE solves found
        # as global minima at the ends of the (rounding-sized) bracket.
        is_jump = (jump0 > MIN_JUMP) & (jnp.abs(m_a - m_b) > MIN_JUMP) \
            & (jnp.abs(m1 - m2) > MIN_JUMP)
        minima = (d2F(m1) > 0) & (d2F(m2) > 0) & (s2 <= 1.0)
        global_ = (jnp.abs(jnp.abs(m1) - jnp.abs(m_a)) <= 1e-6) \
            & (jnp.abs(jnp.abs(m2) - jnp.abs(m_b)) <= 1e-6)
        return _Coexistence(z=z, found=(h > 0) & is_jump & minima & global_, converged=conv)

    return jax.vmap(one)(c, h, a, b, m_a, m_b, jump0)


def _transition_from_z(model, c, h, co: _Coexistence, rng_status) -> MicrocanonicalTransition:
    """The transition's observables at a solved ``z`` (ONE point; differentiable through
    :func:`_coexistence`)."""
    z = _coexistence(model, c, h, co.z)
    m1, m2, e = z[0], z[1], z[2]
    s2 = shell_s2(model, c, h, e, m1)
    o1 = _observables(model, c, h, e, m1)
    o2 = _observables(model, c, h, e, m2)
    first_below = o1.Mx <= o2.Mx  # see the module docstring: the lower-Mx branch wins below
    sel = lambda x1, x2, below: jnp.where(first_below == below, x1, x2)  # noqa: E731
    s = jnp.sqrt(jnp.minimum(s2, 1.0))
    status = jnp.where(co.found, jnp.where(co.converged, Status.OK, Status.NOT_CONVERGED),
                       Status.NO_TRANSITION)
    status = jnp.where((h >= 0) & jnp.isfinite(h), status, Status.OUT_OF_DOMAIN)
    status = jnp.where(rng_status == Status.OK, status, rng_status).astype(jnp.int32)
    good = status == Status.OK
    nan = lambda x: jnp.where(good, x, jnp.nan)  # noqa: E731
    bb, ba = sel(o1.beta, o2.beta, True), sel(o1.beta, o2.beta, False)
    return MicrocanonicalTransition(
        eps=nan(e), entropy=nan(entropy(s)), s=nan(s),
        Mz_below=nan(sel(m1, m2, True)), Mz_above=nan(sel(m1, m2, False)),
        Mx_below=nan(sel(o1.Mx, o2.Mx, True)), Mx_above=nan(sel(o1.Mx, o2.Mx, False)),
        beta_below=nan(bb), beta_above=nan(ba), temperature_below=nan(1.0 / bb),
        temperature_above=nan(1.0 / ba), status=status)


# --------------------------------------------------------------------------- the shared program


class _Analysis(NamedTuple):
    solutions: TemperatureSolutions
    coexistence: _Coexistence
    rng_status: Any


@functools.partial(jax.jit, static_argnames=("model", "treedef", "max_solutions", "n_eps",
                                             "n_scan"))
def _analysis_chunk(h, T, leaves, *, model, treedef, max_solutions, n_eps, n_scan) -> _Analysis:
    """Everything the energy scan of ``P`` points answers, in ONE compiled program: the MCE states
    of temperature ``T`` and the MCE first-order transition."""
    c = jax.tree_util.tree_unflatten(treedef, leaves)
    c, h, T = jax.lax.stop_gradient((c, h, T))
    scan = energy_scan(model, c, h, n_eps, n_scan)
    sol = _temperature_solutions(model, c, h, T, scan, max_solutions, n_scan)
    co = _first_order_search(model, c, h, scan, n_scan)
    return _Analysis(solutions=sol, coexistence=co, rng_status=scan.rng.status)


def analysis(model, c, h, T, *, max_solutions: int = 3, n_eps: int = N_EPS,
             n_scan: int = N_SCAN) -> _Analysis:
    """Run :func:`_analysis_chunk` over flat ``c``, ``h``, ``T`` in chunks of the fixed size
    ``CHUNK`` (padded): whatever the number of points, one compilation per static setting."""
    leaves, treedef = jax.tree_util.tree_flatten(c)
    static = dict(max_solutions=max_solutions, n_eps=n_eps, n_scan=n_scan)

    def fn(h, T, *lv):
        return call_compiled(_analysis_chunk, h, T, tuple(lv), model=model, treedef=treedef,
                             **static)

    return run_chunked(fn, [h, T, *leaves], CHUNK, fixed=True)


@functools.partial(jax.jit, static_argnames=("model", "treedef"))
def _transitions_flat(model, treedef, h, leaves, co, rng_status) -> MicrocanonicalTransition:
    c = jax.tree_util.tree_unflatten(treedef, leaves)
    return jax.vmap(lambda cc, hh, cz, rs: _transition_from_z(model, cc, hh, cz, rs))(
        c, h, co, rng_status)


# --------------------------------------------------------------------------- entry points


def microcanonical_temperature_state(model: CollectiveSpinModel, couplings, h, T, *,
                                     max_solutions: int = 3, n_eps: int = N_EPS,
                                     n_scan: int = N_SCAN) -> TemperatureSolutions:
    """All microcanonical states of temperature ``T`` of any model (see
    :func:`microcanonical_at_temperature`); ``couplings``, ``h``, ``T`` broadcast."""
    if max_solutions < 1:
        raise ValueError(f"max_solutions must be >= 1, got {max_solutions}")
    if n_eps < 16:
        raise ValueError(f"n_eps must be >= 16, got {n_eps}")
    (c, h, T), shape = broadcast_flat((couplings, h, T))
    out = analysis(model, c, h, T, max_solutions=max_solutions, n_eps=n_eps,
                   n_scan=n_scan).solutions
    return jax.tree_util.tree_map(lambda x: x.reshape(shape + x.shape[1:]), out)


def microcanonical_at_temperature(h, K, T, J=1.0, *, max_solutions: int = 3, n_eps: int = N_EPS,
                                  n_scan: int = N_SCAN) -> TemperatureSolutions:
    """Every microcanonical state whose temperature ``1/β(ε)`` equals ``T`` (eqs. 16, 36).

    Where σ(ε) is concave there is one such energy (the canonical one); where it is not, the
    microcanonical ensemble has several (one with negative specific heat between two with positive
    ones, or two separated by an MCE temperature jump).  Energies come from a scan of ``β(ε)`` over
    about ``n_eps`` energies of ``[eps_min, eps_max]`` (geometric towards the edges and around the
    paramagnet's critical energy) and a safeguarded Newton polish on ``β(ε) - 1/T`` with the exact
    (implicitly differentiated) ``dβ/dε``; brackets across a jump of β are discarded.  Not
    differentiable in ``T`` (the states are, in ``eps``, through :func:`jaxlmg.microcanonical`).

    Args:
        h: transverse field ``>= 0``; K: 4-spin coupling ``>= 0``; J: 2-spin coupling ``> 0``;
            energy units; any broadcastable shapes.
        T: temperature (energy units), finite, any sign: ``T < 0`` selects the negative-temperature
            branch, ``T = 0`` returns the ground state (``eps_min``).
        max_solutions: slots per point in the output (static).
        n_eps: energies in the scan of β(ε) (static); states of temperature T closer than one scan
            step to each other may be missed.
        n_scan: points of the global scan of each MCE solve.
    Returns:
        :class:`TemperatureSolutions`: ``eps`` and ``state`` with a trailing axis of size
        ``max_solutions`` (increasing energies, NaN-padded), ``n_solutions`` and ``status`` of the
        broadcast shape.
    """
    check("J", J, lower=0.0, strict=True)
    check("h", h, lower=0.0)
    check("K", K, lower=0.0)
    check("T", T)
    h, K, T, J = as_precision("float64", h, K, T, J)
    return microcanonical_temperature_state(LMG4(), LMGCouplings(J, K), h, T,
                                            max_solutions=max_solutions, n_eps=n_eps,
                                            n_scan=n_scan)


def microcanonical_first_order_state(model: CollectiveSpinModel, couplings, h, *,
                                     n_eps: int = N_EPS,
                                     n_scan: int = N_SCAN) -> MicrocanonicalTransition:
    """MCE first-order transition of any :class:`CollectiveSpinModel` (see
    :func:`microcanonical_first_order`); ``couplings`` and ``h`` broadcast."""
    (c, h), shape = broadcast_flat((couplings, h))
    leaves, treedef = jax.tree_util.tree_flatten(c)
    out = _first_order_diff(model, treedef, n_eps, n_scan, h, tuple(leaves))
    return jax.tree_util.tree_map(lambda x: x.reshape(shape), out)


@functools.partial(jax.custom_jvp, nondiff_argnums=(0, 1, 2, 3))
def _first_order_diff(model, treedef, n_eps, n_scan, h, leaves):
    c = jax.tree_util.tree_unflatten(treedef, leaves)
    an = analysis(model, c, h, jnp.full_like(h, jnp.nan), n_eps=n_eps, n_scan=n_scan)
    return _transitions_flat(model, treedef, h, leaves, an.coexistence, an.rng_status)


@_first_order_diff.defjvp
def _first_order_diff_jvp(model, treedef, n_eps, n_scan, primals, tangents):
    # The search runs once, compiled, on the primal values; the tangents come from the implicit
    # rule of _coexistence in the small closed-form program (never through the iterations).
    h, leaves = primals
    c = jax.tree_util.tree_unflatten(treedef, leaves)
    an = analysis(model, c, h, jnp.full_like(h, jnp.nan), n_eps=n_eps, n_scan=n_scan)
    f = lambda h, lv: _transitions_flat(model, treedef, h, lv, an.coexistence,  # noqa: E731
                                        an.rng_status)
    out, d_out = jax.jvp(f, primals, tangents)
    return out, d_out._replace(status=np.zeros(out.status.shape, jax.dtypes.float0))


def microcanonical_first_order(h, K, J=1.0, *, n_eps: int = N_EPS,
                               n_scan: int = N_SCAN) -> MicrocanonicalTransition:
    """The microcanonical first-order transition of the extended LMG model at fixed ``(h, K, J)``.

    Finds the energy ``ε_t`` where the maximum-entropy state of the shell (eq. 16) jumps between
    two states of equal entropy and different ``Mz`` (two equal global minima of ``s²`` at fixed
    energy, the MCE analogue of equal free energies), and the temperatures ``1/β`` on both sides.
    Where ``Mz(ε)`` changes only continuously (the MCE critical line, eq. 34) or ``h = 0``, the
    status is ``NO_TRANSITION``.  If there are several jumps, the largest in ``Mz`` is returned.

    All outputs are differentiable in ``h``, ``K``, ``J`` (``jax.grad``/``jvp``) by the implicit
    function theorem on the coexistence equations.

    Args:
        h: transverse field ``>= 0``; K: 4-spin coupling ``>= 0``; J: 2-spin coupling ``> 0``;
            energy units; any broadcastable shapes.
        n_eps: energies in the MCE scan that locates the jump.
        n_scan: points of the global scan of each MCE solve.
    Returns:
        :class:`MicrocanonicalTransition` of the broadcast shape.
    """
    check("J", J, lower=0.0, strict=True)
    check("h", h, lower=0.0)
    check("K", K, lower=0.0)
    h, K, J = as_precision("float64", h, K, J)
    return microcanonical_first_order_state(LMG4(), LMGCouplings(J, K), h, n_eps=n_eps,
                                            n_scan=n_scan)
