"""The exact structure of σ(ε) at fixed ``(h, couplings)``, from the family of stationary states.

Every local maximum of the entropy on an energy shell is a stationary point of the spin length on
it, ``R(m) = h² m + (u(m) - ε) u'(m) = 0`` (:mod:`jaxlmg._shell`).  For a model with ``u'(0) = 0``
(every Z₂ model, and PSpin) these are

* the paramagnet ``m = 0`` at every energy: ``Mx = (u(0) - ε)/h``, ``β = artanh(Mx)/h`` (eq. 36);
* the *ordered family*, one state per ``m != 0``, at the energy
  ``ε(m) = u(m) + h²/w(m)`` with ``w = u'(m)/m``, ``Mx = -h/w``, ``s² = m² + h²/w²`` and
  ``β = artanh(s)/r``, ``r = sqrt(h² + u'²)`` (``-m/u'`` has the sign of ``β``).

So the structure of σ needs no scan in energy: it is a set of roots of smooth functions of the
single coordinate ``m`` (``x = m²`` for Z₂ models, where every root near ``m = 0`` is simple):

* **states of temperature T**: stationary points of the canonical landscape at T (Campa, Dauxois,
  Ruffo, Phys. Rep. 480, 57 (2009); Bouchet & Barré, J. Stat. Phys. 118, 1073 (2005)), found by
  the canonical engine's certified search (:mod:`jaxlmg._microcanonical_transitions`); an ordered
  one is the entropy maximum of its shell only if it beats the paramagnet of its energy,
  :func:`paramagnet_excess` ``= m² E(m) <= 0`` below, and is a local entropy maximum on its
  shell, :func:`local_entropy_maximum`, both exact along the family;
* **MCE first-order transitions** (paramagnet <-> ordered, equal entropy at equal energy): roots of
  ``E(m) = (s²(m) - s²_para(ε(m)))/m²``
  ``= -2 (q/m⁴)/w - (Δu/m²)²/h²`` (Z₂; ``Δu = u - u(0)``, ``q = Δu - m u'/2``, both computed by
  Gauss-Legendre quadrature of ``u'`` and ``u'''`` so that nothing cancels as ``m -> 0``).  Next
  to the MCE tricritical condition (``K = J³/h²`` for LMG4) ``E(0)`` itself is small: there
  ``E`` is its Taylor series in ``x``, whose constant term is computed in compensated arithmetic
  from the Taylor coefficients of ``u`` (exact ones for LMG4), so the jump is resolved down to
  ``ΔMz ~ 1e-6`` with ``Mz`` to ~1e-10 relative.

Each root found by a sign change on a fixed internal set of nodes (dense in ``m``, geometric towards
``m = 0``) is polished by :func:`jaxlmg._search.newton_root` and then *verified*: a jump's
ordered state must be a local entropy maximum on its shell (checked along the family, without
cancellation) and no state of the certified shell search
(:func:`jaxlmg._shell.shell_candidates`) may beat the paramagnet: only states that are the
global entropy maximum at their energy are microcanonical states.  Derivatives of the roots come
from :func:`jaxlmg._implicit.implicit_solution`.  One point per call (batched by the entry
points).
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ._compensated import two_prod
from ._implicit import implicit_solution
from ._search import newton_root
from ._shell import shell_candidates
from .models import taylor_coefficients

__all__ = ["BranchState", "branch_state", "coordinate", "first_order_jump", "jump_residual",
           "local_entropy_maximum", "paramagnet_excess", "polish_roots", "sign_brackets"]

_GL_T, _GL_W = np.polynomial.legendre.leggauss(10)
_GL_T, _GL_W = 0.5 * (_GL_T + 1.0), 0.5 * _GL_W  # on [0, 1]
N_NODES = 48
N_GEOM = 20
MAX_STATES = 4  # ordered states of one temperature (plus the paramagnet)
SERIES_X = 1e-5  # x = m² below which the jump residual is its Taylor series (/(1 + scale))
SAME_STATE = 1e-6  # |Mz| agreement that identifies a stationary state with the MCE maximum


def _quad(f):
    t = jnp.asarray(_GL_T)
    return jnp.sum(jnp.asarray(_GL_W) * jax.vmap(f)(t))


def _w(model, c, m):
    """``u'(m)/m`` (``u''(0)`` at ``m = 0``; needs ``u'(0) = 0``: no cancellation for m -> 0)."""
    u = lambda x: model.interaction(x, c)  # noqa: E731
    up = jax.grad(u)(m)
    return jnp.where(m != 0, up / jnp.where(m != 0, m, 1.0), jax.grad(jax.grad(u))(0.0 * m))


def _du_over_m2(model, c, m):
    """``(u(m) - u(0))/m² = ∫₀¹ t w(tm) dt`` (Gauss-Legendre: no cancellation as m -> 0)."""
    return _quad(lambda t: t * _w(model, c, t * m))


def _q_over_m4(model, c, m):
    """``(Δu - m u'/2)/m⁴ = -(1/2) ∫₀¹ (1 - t) t² u₃(tm)/(tm) dt`` (``u₃ = u'''``, odd for Z₂)."""
    u3 = jax.grad(jax.grad(jax.grad(lambda x: model.interaction(x, c))))

    def f(t):
        y = t * m
        return (1.0 - t) * t * t * u3(y) / jnp.where(y != 0, y, 1.0)

    return -0.5 * _quad(f)


def local_entropy_maximum(model, c, h, m):
    """Whether the ordered-family state at ``m != 0`` is a local minimum of s² on its shell.

    The shell's ``g = h² m + (u - ε) u' = u' (ε(m) - ε)`` (``ε(m)`` the family's energy), so at
    the state ``dg/dm = u' ε'(m)``, ``ε' = u' - h² w'/w²``, ``w' = ∫₀¹ t u₃(tm) dt``.  Z₂ models,
    in ``x = m²``: ``dε/dx = w/2 - h² w_x/w²``, ``w_x = (1/2) ∫₀¹ t² u₃(tm)/(tm) dt`` (no
    cancellation as ``m -> 0``); the sign of ``dg/dx`` is that of ``w dε/dx``."""
    u3 = jax.grad(jax.grad(jax.grad(lambda x: model.interaction(x, c))))
    w = _w(model, c, m)
    w2 = jnp.where(w != 0, w * w, 1.0)
    if model.z2_symmetric:
        def f(t):
            y = t * m
            return t * t * u3(y) / jnp.where(y != 0, y, 1.0)

        return w * (0.5 * w - h * h * (0.5 * _quad(f)) / w2) > 0
    return m * w * (m * w - h * h * _quad(lambda t: t * u3(t * m)) / w2) > 0


class BranchState(NamedTuple):
    """A state of the ordered family (or the paramagnet) at ``Mz = m``."""

    m: Any
    eps: Any
    Mx: Any
    s2: Any
    beta: Any


def branch_state(model, c, h, m) -> BranchState:
    """The ordered-family state at ``Mz = m != 0`` (ONE point, closed forms)."""
    u = model.interaction(m, c)
    w = _w(model, c, m)
    w_safe = jnp.where(w != 0, w, 1.0)
    eps = u + h * h / w_safe
    Mx = -h / w_safe
    s2 = m * m + Mx * Mx
    r = jnp.sqrt(h * h + (m * w) ** 2)
    s = jnp.sqrt(jnp.minimum(s2, 1.0))
    beta = jnp.where(-1.0 / w_safe >= 0, 1.0, -1.0) * jnp.arctanh(s) / jnp.where(r > 0, r, 1.0)
    return BranchState(m=m, eps=eps, Mx=Mx, s2=s2, beta=beta)


def coordinate(model):
    """Nodes and the map node -> m (``x = m²`` for Z₂ models)."""
    t = np.linspace(0.0, 1.0, N_NODES)[1:]
    geom = np.logspace(-24, -2, N_GEOM)
    if model.z2_symmetric:
        xs = np.unique(np.concatenate([geom, t * t]))
        return xs, lambda x: jnp.sqrt(x)
    half = np.unique(np.concatenate([np.sqrt(geom), t]))
    return np.concatenate([-half[::-1], half]), lambda x: x


def sign_brackets(g, xs, slots: int):
    """The first ``slots`` sign changes of ``g`` on the nodes ``xs``: ``(lo, hi, g_lo, used)``."""
    gs = jax.vmap(g)(xs)
    change = (gs[:-1] < 0) != (gs[1:] < 0)
    change = change & jnp.isfinite(gs[:-1]) & jnp.isfinite(gs[1:])
    idx = jnp.nonzero(change, size=slots, fill_value=0)[0]
    used = jnp.arange(slots) < jnp.sum(change)
    return xs[idx], xs[idx + 1], gs[idx], used, jnp.sum(change)


def polish_roots(g, lo, hi, glo, used):
    def gd(x):
        return jax.jvp(g, (x,), (jnp.ones_like(x),))

    def one(lo, hi, glo, act):
        lo_, hi_ = jnp.where(act, lo, 0.0), jnp.where(act, hi, 0.0)
        return newton_root(gd, 0.5 * (lo_ + hi_), lo_, hi_, jnp.where(act, glo, -1.0),
                           n_iter=1, active=act)

    return jax.vmap(one)(lo, hi, glo, used)


# --------------------------------------------------------------------------- first order


def _jump_series(model, c, h, x):
    """:func:`jump_residual` of a Z₂ model to ``O(x³)``: ``E = E₀ + E₁ x + E₂ x²`` from the Taylor
    coefficients of ``u``, with ``E₀ = (a₂h² - a₁³)/(a₁h²)`` (the distance to the MCE tricritical
    condition, ``(Kh² - J³)/(Jh²)`` for LMG4) in compensated arithmetic; and the ``x`` below which
    it replaces the quadrature form (truncation below ~1e-10 of ``E₁ x`` there)."""
    a1, a2, a3, a4 = taylor_coefficients(model, c, 4)
    a1s = jnp.where(a1 != 0, a1, 1.0)
    h2, eh2 = two_prod(h, h)
    p, ep = two_prod(a2, h2)
    q2, eq2 = two_prod(a1, a1)
    r, er = two_prod(q2, a1)
    num = (p - r) + (ep + a2 * eh2 - er - eq2 * a1)
    E0 = num / (a1s * h2)
    # series of V = Δu/x, Q = q/x², W = u'/m (degrees 0..2) and E = -2 Q/W - V²/h²
    V0, V1, V2 = a1, a2, a3
    Q0, Q1, Q2 = -a2, -2.0 * a3, -3.0 * a4
    W0, W1, W2 = 2.0 * a1s, 4.0 * a2, 6.0 * a3
    R0 = Q0 / W0
    R1 = (Q1 - R0 * W1) / W0
    R2 = (Q2 - R0 * W2 - R1 * W1) / W0
    E1 = -2.0 * R1 - 2.0 * V0 * V1 / h2
    E2 = -2.0 * R2 - (2.0 * V0 * V2 + V1 * V1) / h2
    rho = jnp.abs(a2 / a1s) + jnp.sqrt(jnp.abs(a3 / a1s)) + jnp.abs(a4 / a1s) ** (1.0 / 3.0)
    x_small = jnp.where(a1 != 0, SERIES_X / (1.0 + rho), -1.0)
    return E0 + x * (E1 + x * E2), x_small


def jump_residual(model, x, p):
    """``E = (s² - s²_para)/m²`` along the ordered family at the node ``x``; ``p = (c, h)``.

    Z₂ models with ``u''(0) != 0``: next to ``x = 0`` (tiny jumps, next to the MCE tricritical
    condition) the Taylor series of :func:`_jump_series`, whose constant term is the small
    distance to that condition computed without cancellation; the quadrature form there would
    lose ``1e-16/E₀`` relative in the root."""
    c, h = p
    m = jnp.sqrt(x) if model.z2_symmetric else x
    w = _w(model, c, m)
    du = _du_over_m2(model, c, m)
    h2 = h * h
    if model.z2_symmetric:
        direct = -2.0 * _q_over_m4(model, c, m) / w - du * du / h2
        series, x_small = _jump_series(model, c, h, x)
        return jnp.where(x < x_small, series, direct)
    # non-Z2 with u'(0) = 0: E = 1 - 2 (Δu/m)/u' - (Δu/m)²/h² with Δu/m = m du, u' = m w
    return 1.0 - 2.0 * du / w - (m * du) ** 2 / h2


def paramagnet_excess(model, c, h, m):
    """``s²(m) - s²_para`` of the ordered-family state at ``Mz = m != 0`` against the paramagnet
    of the same energy ``ε(m)`` (``h > 0``, ``u'(0) = 0``): ``m² E`` with ``E`` of
    :func:`jump_residual`, so it is exact to rounding of the *difference* even where the two
    spin lengths agree to ``~Mz⁴`` (next to the MCE tricritical condition).  ``<= 0``: the
    ordered state has at least the paramagnet's entropy."""
    x = m * m if model.z2_symmetric else m
    return m * m * jump_residual(model, x, (c, h))


@functools.cache
def _jump_G(model):
    return functools.partial(jump_residual, model)


class Jump(NamedTuple):
    m: Any  # Mz of the ordered state at the jump (its partner is the paramagnet)
    eps: Any
    found: Any
    converged: Any


def first_order_jump(model, c, h, slots: int = 3) -> Jump:
    """The paramagnet <-> ordered MCE first-order transitions of ONE ``(h, couplings)``: the roots
    of :func:`jump_residual` that are verified as two coexisting global entropy maxima; the one of
    largest ``|ΔMz|`` is returned, its root differentiable (implicit function theorem)."""
    cs, hs = jax.lax.stop_gradient((c, h))
    dtype = jnp.result_type(h, float)
    xs_np, to_m = coordinate(model)
    xs = jnp.asarray(xs_np, dtype)
    G = _jump_G(model)
    hpos = hs > 0
    h_safe = jnp.where(hpos, hs, 1.0)
    g = lambda x: G(x, (cs, h_safe))  # noqa: E731
    lo, hi, glo, used, _ = sign_brackets(g, xs, slots)
    xr, conv = polish_roots(g, lo, hi, glo, used)
    ms = to_m(xr)
    br = jax.vmap(lambda m: branch_state(model, cs, h_safe, m))(ms)

    def verified(m, e, ok):
        # Two coexisting global maxima: the ordered root is a local minimum of s² on its shell
        # (exact, along the family: no cancellation) and no state of the shell is shorter than
        # the paramagnet (cand_rel = s² - s²_para; the ordered root has it 0 by construction).
        # Equal s² at a local minimum makes the paramagnet a local minimum too (s² must rise
        # from m = 0 to come back down into m).  Matching the ordered root to a shell candidate
        # instead fails for tiny jumps next to K = J³/h²: the shell's s² differences are ~Mz⁶
        # there, below rounding, and its candidates near m = 0 are noise.
        cand = shell_candidates(model, cs, h_safe, e)
        best = jnp.min(jnp.where(cand.cand_ok, cand.cand_rel, jnp.inf))
        tol = 1e-11
        return (ok & cand.feasible & (best >= -tol) & local_entropy_maximum(model, cs, h_safe, m)
                & (jnp.abs(m) > 1e-6))

    good = jax.vmap(verified)(ms, br.eps, used & conv & (br.s2 <= 1.0))
    # the largest jump; between equal ones (PSpin(3): ±ε mirror jumps) the lowest energy
    size = jnp.where(good, jnp.abs(ms), -1.0)
    k = jnp.argmin(jnp.where(good & (size >= jnp.max(size) * (1 - 1e-9)), br.eps, jnp.inf))
    x_star = implicit_solution(G, jnp.where(good[k], xr[k], xs[-1]), (c, jnp.where(hpos, h, 1.0)))
    m = to_m(x_star)
    return Jump(m=m, eps=branch_state(model, c, h, m).eps, found=good[k] & hpos,
                converged=conv[k])
