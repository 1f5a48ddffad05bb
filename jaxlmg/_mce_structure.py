"""Where σ(ε) of one ``(h, couplings)`` is not concave, and where its specific heat is negative:
exact, from the ordered family of :mod:`jaxlmg._mce_branches`, independent of any energy grid.

Along the ordered family (coordinate ``x = Mz²`` for Z₂ models, ``Mz`` otherwise) the energy
``ε(x)``, the spin length and ``β(x)`` are closed forms.  The microcanonical curve is the paramagnet
(``c > 0`` everywhere) or a piece of the family, so:

* ``c = -β² ε'(x)/β'(x)`` changes sign only at roots of ``β'`` and ``ε'``; a piece of the family
  between consecutive such roots, MCE jumps and the ends of the physical range (``s <= 1``) has one
  sign of ``c`` and is, or is not, the entropy maximum of its shells (checked at its midpoint with
  the certified shell maximum): the ``c < 0`` intervals are the pieces with ``c < 0`` that are;
* a non-concave interval of σ is the latent heat of a canonical first-order transition: the double
  tangent between the paramagnet and an ordered state of equal ``β`` and equal free energy
  ``ε - σ/β`` — a root of ``Φ(x) = f_ordered(x) - f_para(β(x))``, then verified: both states are
  the lowest free energy among all MCE states of that temperature.

Every root is bracketed on a fixed internal set of nodes and polished by
:func:`jaxlmg._search.newton_root` to machine precision.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from ._mce_branches import branch_state, coordinate, first_order_jump, polish_roots, sign_brackets
from ._model import entropy
from ._shell import shell_point

__all__ = ["Structure", "structure_point"]

N_SPLIT = 6  # roots of each kind kept


class Structure(NamedTuple):
    """Candidate structure of σ for ONE ``(h, couplings)`` (fixed-size slots)."""

    piece_lo: Any  # (n,) energies of the ends of each piece of the ordered family
    piece_hi: Any
    piece_negative: Any  # (n,) c < 0 on the piece and it is the MCE equilibrium there
    tangent_lo: Any  # (N_SPLIT,) double-tangent candidates: the two energies and beta
    tangent_hi: Any
    tangent_beta: Any
    tangent_ok: Any


def _funcs(model, c, h):
    z2 = model.z2_symmetric

    def state(x):
        m = jnp.sqrt(x) if z2 else x
        return branch_state(model, c, h, m)

    def d(f):
        return lambda x: jax.jvp(f, (x,), (jnp.ones_like(x),))[1]

    eps = lambda x: state(x).eps  # noqa: E731
    beta = lambda x: state(x).beta  # noqa: E731
    return state, eps, beta, d(eps), d(beta)


def _roots(g, xs):
    lo, hi, glo, used, _ = sign_brackets(g, xs, N_SPLIT)
    x, conv = polish_roots(g, lo, hi, glo, used)
    return x, used & conv


def structure_point(model, couplings, h) -> Structure:
    """Pieces of the ordered family and double-tangent candidates of ONE ``(h, couplings)``."""
    c, h = jax.lax.stop_gradient((couplings, h))
    dtype = jnp.result_type(h, float)
    xs_np, to_m = coordinate(model)
    xs = jnp.asarray(xs_np, dtype)
    state, eps, beta, deps, dbeta = _funcs(model, c, h)
    s2 = lambda x: state(x).s2 - 1.0  # noqa: E731
    r_db, ok_db = _roots(dbeta, xs)
    r_de, ok_de = _roots(deps, xs)
    r_s, ok_s = _roots(s2, xs)
    jump = first_order_jump(model, c, jnp.where(h > 0, h, 1.0))
    x_j = jnp.where(model.z2_symmetric, jump.m * jump.m, jump.m)
    ok_j = jump.found & (h > 0)
    # split points of the physical part (s <= 1) of the family
    phys = lambda x: state(x).s2 <= 1.0  # noqa: E731
    pts = jnp.concatenate([xs[:1], xs[-1:], r_db, r_de, r_s, x_j[None]])
    okp = jnp.concatenate([jnp.ones((2,), bool), ok_db, ok_de, ok_s, ok_j[None]])
    pts = jnp.sort(jnp.where(okp, pts, jnp.inf))
    a, b = pts[:-1], pts[1:]
    valid = jnp.isfinite(a) & jnp.isfinite(b) & (b > a)
    mid = jnp.where(valid, 0.5 * (a + b), xs[0])
    ends_phys = jax.vmap(phys)(mid)

    def piece(xa, xb, xm):
        st = state(xm)
        cneg = -st.beta ** 2 * deps(xm) / dbeta(xm) < 0
        sp = shell_point(model, c, h, st.eps).state
        is_eq = jnp.abs(sp.Mz - to_m(xm)) <= 1e-6 * (1.0 + jnp.abs(sp.Mz))
        return eps(xa), eps(xb), cneg & is_eq

    e_a, e_b, neg = jax.vmap(piece)(a, b, mid)
    neg = neg & valid & ends_phys
    lo, hi = jnp.minimum(e_a, e_b), jnp.maximum(e_a, e_b)

    # double tangents paramagnet <-> ordered: Φ(x) = f_ord - f_para at the same beta > 0
    def phi(x):
        st = state(x)
        bt = st.beta
        s = jnp.sqrt(jnp.minimum(st.s2, 1.0))
        Mx_p = jnp.tanh(bt * h)
        e_p = model.interaction(jnp.zeros_like(x), c) - h * Mx_p
        return (st.eps - entropy(s) / bt) - (e_p - entropy(jnp.abs(Mx_p)) / bt)

    r_t, ok_t = _roots(phi, xs)
    st_t = jax.vmap(state)(r_t)
    e_p = model.interaction(jnp.zeros((), dtype), c) - h * jnp.tanh(st_t.beta * h)
    ok_t = ok_t & (st_t.beta > 0) & (st_t.s2 <= 1.0)
    return Structure(piece_lo=lo, piece_hi=hi, piece_negative=neg,
                     tangent_lo=jnp.minimum(st_t.eps, e_p), tangent_hi=jnp.maximum(st_t.eps, e_p),
                     tangent_beta=st_t.beta, tangent_ok=ok_t)
