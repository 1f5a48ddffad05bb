"""Canonical engine: global minimum of the mean-field free energy, eq. (19), over (s, θ, φ).

Design (one point, then ``vmap`` in one place):

1.  **Exact reduction to one variable.**  For ``h >= 0`` the optimum has ``φ = 0``.  At fixed
    ``Mz`` the free energy is convex in ``Mx``, and the inner optima are the states of a free spin
    in the field ``(h, 0, b)`` (:func:`jaxlmg._model.field_state`).  The global minimum of eq. (19)
    is therefore the global minimum of the closed-form scalar function
    ``F(b) = u(Mz(b)) - h Mx(b) - T S(s(b))`` over ``0 <= b <= max_field``.
2.  **Certified search.**  Every stationary point of ``F`` (minima and maxima) is a root of the
    self-consistency residual ``g(b) = b + u'(Mz(b))`` (``ρ = g/b`` for Z₂ models), bracketed by
    :func:`jaxlmg._search.certified_brackets`: an interval between scan fields is either excluded
    by a mean-value bound on ``g'`` from the model's derivative bounds, or bisected
    (:func:`stationary_points`); ``n_minima`` counts the minima.
3.  **Polish.**  Each bracket is polished by the one safeguarded Newton
    (:func:`jaxlmg._search.newton_root`); the lowest minimum is returned, its derivatives by the
    implicit function theorem (:func:`jaxlmg._implicit.implicit_solution`).  The paramagnet
    ``b = 0`` is exactly stationary for Z₂-symmetric models.  Next to a second-order line (the
    order parameter ~ ``sqrt(h_c - h)``) the minimum is polished in compensated arithmetic
    (:mod:`jaxlmg._near_critical`), so ``Mz`` keeps full relative precision there.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from ._batch import batched
from ._implicit import implicit_solution
from ._model import field_state
from ._near_critical import near_critical_root, needs_polish
from ._search import (
    FALLING,
    RISING,
    UNRESOLVED,
    Node,
    certified_brackets,
    newton_root,
    slope_excludes,
)
from ._status import Status
from ._validate import as_precision, check
from .models import (
    LMG4,
    CollectiveSpinModel,
    LMGCouplings,
    interaction_derivative,
    quartic_bound,
)

__all__ = ["CanonicalState", "GroundState", "canonical", "canonical_state", "ground_state"]

N_SCAN = 24
#: geometric nodes ``b_1 SUB_RATIO^k`` between the paramagnet and the first scan field (Z₂)
N_SUB = 4
SUB_RATIO = 1.0 / 32.0


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
    # slightly beyond the bound: a stationary field can sit exactly at it (Mz = 1 at h = T = 0),
    # and must be strictly inside the scanned interval to be bracketed
    B = model.max_field(couplings) * (1.0 + 1e-9) + 1e-300
    t = jnp.linspace(0.0, 1.0, n_scan, dtype=jnp.result_type(h, T))
    v = t * t * (1.0 - 1e-12)
    b = h * v / jnp.sqrt((1.0 - v) * (1.0 + v)) + T * jnp.arctanh(v)
    # h = T = 0 (the classical ground state): Mz(b) is a step, every field b > 0 saturates;
    # spread the scan over (0, B] so that the nodes stay distinct.
    b = jnp.where((h == 0) & (T == 0), B * v, b)
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


class StationaryPoints(NamedTuple):
    """Every stationary point of the reduced canonical landscape ``F(b)`` at one ``(h, T)``.

    Slots are sorted by ``b``; unused slots have ``kind = -2`` and NaN fields.  For Z₂-symmetric
    models only ``b >= 0`` is searched and the paramagnet ``b = 0`` is slot 0.

    Attributes:
        b: ``(k,)`` molecular fields ``b = -u'(Mz)``.
        Mz, Mx, s: ``(k,)`` the states (:func:`jaxlmg._model.field_state`).
        F: ``(k,)`` free energy per spin of each state.
        kind: ``(k,)`` +1 local minimum, -1 local maximum, 0 unresolved double root (a spinodal
            within rounding), -2 unused.
        converged: ``(k,)`` the Newton polish met its tolerance.
        certified: the search excluded every interval it did not bracket (no state missed).
        complete: every stationary point found fit in the slots (``False``: more than
            ``max_roots``; the missing ones may include the global minimum).
    """

    b: Any
    Mz: Any
    Mx: Any
    s: Any
    F: Any
    kind: Any
    converged: Any
    certified: Any
    complete: Any = True


def _ratio(model: CollectiveSpinModel, couplings, Mz):
    """``u'(Mz)/Mz`` for an odd ``u'`` (Z₂ models), ``u''(0)`` at ``Mz = 0`` (scalar)."""
    up = interaction_derivative(model, couplings, Mz)
    upp0 = interaction_derivative(model, couplings, jnp.zeros_like(Mz), 2)
    nz = Mz != 0
    return jnp.where(nz, up / jnp.where(nz, Mz, 1.0), upp0)


def stationarity(model: CollectiveSpinModel, couplings, h, T, b):
    """Stationarity residual of the reduced canonical landscape and its parts (scalars).

    ``F'(b) = (b + u'(Mz(b))) dMz/db`` with ``dMz/db > 0``, so the stationary points are the roots
    of ``g(b) = b + u'(Mz(b))`` (the self-consistency ``b = -u'(Mz)`` of the molecular field).
    For Z₂-symmetric models the root ``b = 0`` is factored out: ``ρ(b) = g(b)/b =
    1 + (u'(Mz)/Mz) (Mz/b)``, whose root is simple next to a critical line (where ``g`` has a
    cubic zero) and whose value at ``b = 0`` has the sign of the paramagnetic stiffness.

    Returns:
        ``(residual, (b, u'(Mz), Mz))``: ``ρ`` (Z₂) or ``g``, and the parts of ``g`` that the
        certified search's exclusion test uses.
    """
    # The free spin in the field (h, 0, b) (:func:`jaxlmg._model.field_state`), only what the
    # residual needs, with one division per term (this runs on every scan node).
    r2 = h * h + b * b
    pos = r2 > 0
    r_safe = jnp.sqrt(jnp.where(pos, r2, 1.0))
    inv_r = 1.0 / r_safe
    hot = T > 0
    inv_T = jnp.where(hot, 1.0 / jnp.where(hot, T, 1.0), 0.0)
    x = jnp.where(pos, r_safe, 0.0) * inv_T
    q = jnp.exp(-2.0 * x)
    inv_1q = 1.0 / (1.0 + q)
    s = jnp.where(hot, -jnp.expm1(-2.0 * x) * inv_1q, 1.0)  # tanh(r/T)
    # Mz/b = tanh(r/T)/r (-> 1/T at r = 0; 1/r at T = 0), decreasing in |b|
    chi = jnp.where(pos, s * inv_r, jnp.where(hot, inv_T, 1.0))
    Mz = chi * b
    up = interaction_derivative(model, couplings, Mz)
    upp = interaction_derivative(model, couplings, Mz, 2)
    # dMz/db = χ h²/r² + (b²/r²) sech²(r/T)/T (both terms >= 0; 1/T at r = 0, h²/r³ at T = 0);
    # Mz(b) is concave on b >= 0 (r² d/dr[tanh(r/T)/r] decreases), so this decreases in |b|.
    frac_h = jnp.where(pos, (h * inv_r) ** 2, 1.0)
    dMz = chi * frac_h + (1.0 - frac_h) * (4.0 * q * inv_1q * inv_1q) * inv_T
    if not model.z2_symmetric:
        return b + up, (b, up, Mz, chi, up, upp, dMz)
    a = _ratio(model, couplings, Mz)
    return 1.0 + a * chi, (b, up, Mz, chi, a, upp, dMz)


def stationary_points(model: CollectiveSpinModel, couplings, h, T, n_scan: int = N_SCAN,
                      max_roots: int | None = None, max_rounds: int = 48,
                      minima_only: bool = False) -> StationaryPoints:
    """All stationary points (minima and maxima) of the reduced canonical landscape, certified.

    Nodes: the global scan :func:`scan_fields` (dense near ``Mz = 0``) plus, for Z₂ models, a
    geometric grid ``b_1 32^-k`` (``k = 1..4``) toward the paramagnet.  The certified search
    (:func:`jaxlmg._search.certified_brackets`) brackets every root of :func:`stationarity`:
    an interval is excluded by a mean-value test on ``g = b + u'(Mz)`` with an enclosure of
    ``g' = 1 + u''(Mz) dMz/db`` (``Mz(b)`` is concave for ``b >= 0``; ``u'''`` is bounded by the
    model's quartic bound), and for Z₂ models also by an enclosure of ``ρ = g/b`` that stays sharp
    near the paramagnet.  Each bracket is polished by safeguarded Newton.
    For Z₂ models the interval next to ``b = 0`` (``|Mz| < ~1e-9``) is decided by the sign of the
    paramagnetic stiffness alone.  ``T = 0`` and ``h = 0`` are included.

    Args:
        model, couplings, h, T: scalars (``T >= 0``, ``h >= 0``).
        n_scan: scan nodes; max_roots: slots for roots besides the paramagnet (default 4 for Z₂
            models, 6 otherwise: a longitudinal field has up to 5 stationary points); max_rounds:
            bisection rounds of the certified search (``certified`` is ``False`` if they ran out);
            minima_only: polish only (the first two) minima, the other slots keep the regula
            falsi point of their bracket (what the canonical engine needs).
    Returns:
        :class:`StationaryPoints` with ``max_roots`` (+1 for Z₂ models) slots.
    """
    z2 = model.z2_symmetric
    if max_roots is None:
        max_roots = 4 if z2 else 6
    bs = scan_fields(model, couplings, h, T, n_scan)
    gfun = functools.partial(stationarity, model, couplings, h, T)
    if z2:
        sub = bs[1] * SUB_RATIO ** jnp.arange(N_SUB, 0, -1, dtype=bs.dtype)
        nodes = jnp.concatenate([bs[:1], sub, bs[1:]])
    else:
        # b = 0 is an exact root wherever u'(0) = 0 (odd p-spin): keep it off the nodes, inside
        # the middle interval, where the sign change brackets it.
        nodes = jnp.concatenate([bs[: n_scan - 1], bs[n_scan:]])

    upp0 = interaction_derivative(model, couplings, jnp.zeros_like(h), 2)
    eps = jnp.finfo(h.dtype).eps

    if z2:
        # ρ(0) has the sign of the stiffness.  Within rounding of a critical point the sign of ρ
        # at small b is rounding noise: there the next Landau order decides, read off ρ at a
        # probe field (|Mz| ~ 1e-3) for every node below it.
        rho0, aux0 = gfun(jnp.zeros_like(h))
        noise = 16 * eps * (1.0 + jnp.abs(upp0) * aux0[3])
        b_probe = 1e-3 * nodes[-1]
        critical = jnp.abs(rho0) <= noise
        probe = gfun(b_probe)[0]

    # Mean-value exclusion of g = b + u'(Mz) (:func:`jaxlmg._search.slope_excludes`), with the
    # enclosure g' = 1 + u''(Mz) dMz/db: dMz/db > 0 is monotone on each side of b = 0 (Mz is
    # concave on b >= 0), and u'' is Lipschitz in Mz, |u'''(t)| <= |u'''(0)| + max|u⁗| |t|.
    # Second-order sharp: only intervals next to a double root (a spinodal) or a critical point
    # stay uncertain.
    u3_0 = jnp.abs(interaction_derivative(model, couplings, jnp.zeros_like(h), 3))
    quart = quartic_bound(model, couplings)
    slope = quart / 6.0
    tol = 8 * eps * (1.0 + jnp.abs(upp0))

    def mean_value(a: Node, c: Node):
        ma, mc = a.aux[2], c.aux[2]
        L3 = u3_0 + quart * jnp.maximum(jnp.abs(ma), jnp.abs(mc))
        mean = 0.5 * (a.aux[5] + c.aux[5])
        half = 0.5 * L3 * jnp.abs(mc - ma) + 1e-13 * (1.0 + jnp.abs(mean))
        u_lo, u_hi = mean - half, mean + half
        p_lo, p_hi = jnp.minimum(a.aux[6], c.aux[6]), jnp.maximum(a.aux[6], c.aux[6])
        d_lo = 1.0 + u_lo * jnp.where(u_lo < 0, p_hi, p_lo)
        d_hi = 1.0 + u_hi * jnp.where(u_hi > 0, p_hi, p_lo)
        ok = ((a.x >= 0) | (c.x <= 0)) & jnp.isfinite(d_lo + d_hi)
        ga, gc = a.aux[0] + a.aux[1], c.aux[0] + c.aux[1]
        margin = 64 * eps * (jnp.abs(a.aux[0]) + jnp.abs(a.aux[1]) + jnp.abs(c.aux[0])
                             + jnp.abs(c.aux[1]))
        return ok & slope_excludes(ga, gc, c.x - a.x, d_lo, d_hi, margin)

    def excludes(a: Node, c: Node):
        out = mean_value(a, c)
        if z2:
            # ρ = 1 + u''(0) χ(b) + d(y) χ(b), d = u'(Mz)/Mz - u''(0), y = Mz²: χ(b) > 0 is
            # decreasing and d is Lipschitz in y with constant max|u⁗|/6, an enclosure that stays
            # sharp near the paramagnet and a critical line.  (0, b_min] is decided by the
            # stiffness alone.
            Ma, Mc = 1.0 + upp0 * a.aux[3], 1.0 + upp0 * c.aux[3]
            da, dc = a.aux[4] - upp0, c.aux[4] - upp0
            half = 0.5 * slope * jnp.abs(c.aux[2] ** 2 - a.aux[2] ** 2) + tol
            d_lo, d_hi = 0.5 * (da + dc) - half, 0.5 * (da + dc) + half
            x_lo, x_hi = jnp.minimum(a.aux[3], c.aux[3]), jnp.maximum(a.aux[3], c.aux[3])
            p_lo = d_lo * jnp.where(d_lo < 0, x_hi, x_lo)
            p_hi = d_hi * jnp.where(d_hi > 0, x_hi, x_lo)
            out = out | (jnp.minimum(Ma, Mc) + p_lo > 0) | (jnp.maximum(Ma, Mc) + p_hi < 0)
            out = out | (a.x == 0) | (critical & (c.x <= b_probe))
        return out

    def gfun_z2(b):
        g, aux = gfun(b)
        if z2:
            g = jnp.where(b == 0, jnp.where(critical, probe, rho0), g)
            g = jnp.where(critical & (b < b_probe), probe, g)
        return g, aux

    width = 1e-13 * (nodes[-1] - nodes[0] + 1.0)
    br = certified_brackets(gfun_z2, excludes, nodes, max_roots=max_roots, min_width=width,
                            max_rounds=max_rounds)

    def gd(b):
        return jax.jvp(lambda x: gfun_z2(x)[0], (b,), (jnp.ones_like(b),))

    # rounding level of the residual: ρ is O(1) (Z₂); g = b + u' is O(max_field)
    gtol = 32 * jnp.finfo(h.dtype).eps * (1.0 if z2 else 1.0 + nodes[-1])

    def mag_change(b, db, g):
        before, after = field_state(b - db, h, T), field_state(b, h, T)
        return jnp.maximum(jnp.abs(before.Mz - after.Mz), jnp.abs(before.Mx - after.Mx)) <= 1e-14

    def polish(lo, hi, glo, ghi, kind):
        used = kind > -2
        resolved = used & (kind != 0)
        den = jnp.where(glo != ghi, glo - ghi, 1.0)
        x0 = jnp.clip(lo + glo * (hi - lo) / den, lo, hi)  # regula falsi start
        x0 = jnp.where(resolved, x0, jnp.where(used, 0.5 * (lo + hi), 0.0))
        lo_s = jnp.where(resolved, lo, x0)
        hi_s = jnp.where(resolved, hi, x0)
        b, ok = newton_root(gd, x0, lo_s, hi_s, glo, active=resolved, gtol=gtol,
                            converged_extra=mag_change)
        return b, ok | ~resolved

    if minima_only:
        # Newton only on (up to) the first 2 (Z2) or 3 minima; the other slots keep their bracket's
        # regula falsi point (unused by the canonical engine).
        n_pick = 2 if z2 else 3
        pick = jnp.nonzero(br.kind == RISING, size=n_pick, fill_value=max_roots)[0]
        take = lambda x: jnp.concatenate([x, x[:1]])[pick]  # noqa: E731  (fill: a dummy slot)
        kind2 = jnp.where(pick < max_roots, take(br.kind), -2)
        b2, conv2 = jax.vmap(polish)(take(br.lo), take(br.hi), take(br.g_lo), take(br.g_hi), kind2)
        b0, _ = jax.vmap(lambda lo, hi, glo, ghi, k: (jnp.clip(
            lo + glo * (hi - lo) / jnp.where(glo != ghi, glo - ghi, 1.0), lo, hi), k))(
            br.lo, br.hi, br.g_lo, br.g_hi, br.kind)
        b = jnp.concatenate([b0, b0[:1]]).at[pick].set(b2)[:max_roots]
        # an unpolished minimum (a third one) is not converged: if it is the lowest, say so
        conv = jnp.concatenate([br.kind != RISING, jnp.ones((1,), bool)])
        conv = conv.at[pick].set(conv2)[:max_roots]
    else:
        b, conv = jax.vmap(polish)(br.lo, br.hi, br.g_lo, br.g_hi, br.kind)
    kind = br.kind
    if z2:
        para_kind = jnp.where(gfun_z2(jnp.zeros_like(h))[0] >= 0, RISING, FALLING)
        b = jnp.concatenate([jnp.zeros((1,), b.dtype), b])
        kind = jnp.concatenate([para_kind[None].astype(kind.dtype), kind])
        conv = jnp.concatenate([jnp.ones((1,), bool), conv])
    used = kind > -2
    b = jnp.where(used, b, jnp.nan)
    st = jax.vmap(lambda x: field_state(x, h, T))(b)
    F = jax.vmap(lambda x: reduced_free_energy(model, couplings, h, T, x))(b)
    return StationaryPoints(b=b, Mz=st.Mz, Mx=st.Mx, s=st.s, F=jnp.where(used, F, jnp.nan),
                            kind=kind, converged=conv, certified=br.certified,
                            complete=br.complete)


def canonical_point(model: CollectiveSpinModel, couplings, h, T, n_scan: int = N_SCAN,
                    max_rounds: int = 48) -> CanonicalState:
    """Canonical equilibrium at ONE point; scalars in, :class:`CanonicalState` of scalars out.

    The global minimum over the certified stationary points (:func:`stationary_points`); derivatives
    by the implicit function theorem on the stationarity condition (the value of ``F`` at the
    minimum by the envelope theorem), never through the search.
    """
    return canonical_point_flagged(model, couplings, h, T, n_scan, max_rounds)[0]


def canonical_point_flagged(model: CollectiveSpinModel, couplings, h, T, n_scan: int = N_SCAN,
                            max_rounds: int = 48, polish: bool = True):
    """:func:`canonical_point` and a flag, ``unfinished``: ``max_rounds`` did not suffice to
    certify the search, or (``polish=False``) the point needs the near-critical polish (the
    batching layer then recomputes it with more rounds and the polish)."""
    # The search sees no tangents (its loops are never differentiated); derivatives come from
    # the implicit function theorem on the stationarity condition.
    sg = jax.lax.stop_gradient
    sp = stationary_points(model, sg(couplings), sg(h), sg(T), n_scan, max_rounds=max_rounds,
                           minima_only=True)
    is_min = sp.kind == RISING
    F = jnp.where(is_min | (sp.kind == UNRESOLVED), sp.F, jnp.inf)
    if model.z2_symmetric:
        # The paramagnet is exact; a ferromagnet within rounding of it (at a critical or
        # tricritical point, F - F_para ~ Mz^4 or Mz^6 < eps) is not a distinct phase.
        tie = 4 * jnp.finfo(F.dtype).eps * (1.0 + jnp.abs(sp.F[0]))
        F = F.at[0].add(-tie)
    k = jnp.argmin(F)
    n_minima = jnp.sum(is_min).astype(jnp.int32)
    b = sp.b[k]
    unfinished = ~sp.certified
    if model.z2_symmetric and b.dtype == jnp.float64:
        # next to a second-order line the float root loses 1e-16/|ρ(0)| relative: polish it in
        # compensated arithmetic (:mod:`jaxlmg._near_critical`), or leave it to the thorough pass
        Mz_k = jnp.where(jnp.isfinite(sp.Mz[k]), sp.Mz[k], 0.0)
        if polish:
            nc = near_critical_root(model, sg(couplings), sg(h), sg(T), Mz_k)
            b = jnp.where(nc.apply, -interaction_derivative(model, sg(couplings), nc.Mz), b)
        else:
            unfinished = unfinished | needs_polish(model, sg(couplings), sg(h), sg(T), Mz_k)
    b = _implicit_minimizer(model, couplings, h, T, jax.lax.stop_gradient(b))
    st = field_state(b, h, T)
    e = model.interaction(st.Mz, couplings) - h * st.Mx
    f = e - st.TS

    # (sp.certified is not required: next to a tricritical point the landscape is flat to
    # rounding over a range no enclosure can resolve; its uncertain intervals are candidates.)
    # (a search whose stationary points overflowed the slots may have lost the global minimum)
    ok = sp.converged[k] & jnp.isfinite(F[k]) & sp.complete
    status = jnp.where(ok, Status.OK, Status.NOT_CONVERGED)
    status = jnp.where(jnp.isfinite(f) & jnp.isfinite(b), status, Status.NONFINITE)
    finite = jnp.isfinite(h) & jnp.isfinite(T)
    for leaf in jax.tree_util.tree_leaves(couplings):
        finite = finite & jnp.isfinite(leaf)
    status = jnp.where(finite, status, Status.NONFINITE)
    domain_ok = (h >= 0) & (T >= 0) | ~finite
    status = jnp.where(domain_ok, status, Status.OUT_OF_DOMAIN).astype(jnp.int32)
    good = status == Status.OK
    nan = lambda x: jnp.where(good, x, jnp.nan)  # noqa: E731
    mz = jnp.where(st.s > 0, st.Mz / jnp.where(st.s > 0, st.s, 1.0), 0.0)
    return CanonicalState(
        s=nan(st.s), mz=nan(mz), Mz=nan(st.Mz), Mx=nan(st.Mx), f=nan(f), energy=nan(e),
        entropy=nan(st.entropy), n_minima=jnp.where(good, n_minima, 0), status=status,
    ), unfinished


def _stationarity_residual(model, b, params):
    """The residual whose root is a stationary ``b`` (the paramagnet ``b = 0`` of a Z₂ model is a
    root for every parameter: ``G = b`` there, so its derivatives vanish)."""
    couplings, h, T = params
    rho = stationarity(model, couplings, h, T, b)[0]
    return jnp.where(b == 0, b, rho) if model.z2_symmetric else rho


def _implicit_minimizer(model, couplings, h, T, b):
    """``b`` with implicit-function-theorem derivatives on the stationarity condition."""
    G = functools.partial(_stationarity_residual, model)
    return implicit_solution(G, b, (couplings, h, T))


# --------------------------------------------------------------------------- batched entry points


#: Bisection rounds of the fast pass; points that need more (next to spinodals and tricritical
#: points) are recomputed with the full budget (``_batch.flat_kernel``'s ``escalate``).
FAST_ROUNDS = 0
FULL_ROUNDS = 48


def _canonical_kernel(couplings, h, T, *, model, n_scan, max_rounds, polish):
    return canonical_point_flagged(model, couplings, h, T, n_scan, max_rounds, polish)


def canonical_state(model: CollectiveSpinModel, couplings, h, T, *,
                    n_scan: int = N_SCAN) -> CanonicalState:
    """Canonical equilibrium of any collective-spin model on a broadcast grid.

    The global minimum of eq. (19) (with ``u`` the model's interaction), over the certified
    stationary points of the exactly reduced landscape (see the module docstring).  Differentiable
    (forward and reverse mode) by the implicit function theorem: ``f`` by the envelope theorem.

    Args:
        model: the model (static; e.g. ``LMG4()``, ``PSpin(3)``).
        couplings: the model's couplings, a NamedTuple whose leaves broadcast with ``h`` and ``T``
            (energy units).
        h: transverse field, ``>= 0``, any shape (energy units).
        T: temperature, ``>= 0``, any shape (``T = 0`` gives the ground state).
        n_scan: fields in the global scan (the search is certified whatever its value; more
            nodes mean fewer refinement rounds).
    Returns:
        :class:`CanonicalState` with the broadcast shape of ``(couplings..., h, T)``; per point,
        ``status`` is ``OUT_OF_DOMAIN`` for ``h < 0`` or ``T < 0`` and ``NONFINITE`` for NaN/inf
        inputs (fields NaN).
    """
    return batched(_canonical_kernel, (couplings, h, T),
                   static=(("model", model), ("n_scan", n_scan), ("max_rounds", FAST_ROUNDS),
                           ("polish", False)),
                   escalate=(("max_rounds", FULL_ROUNDS), ("polish", True)))


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
        J: 2-spin coupling, ``J >= 0`` (``J = 0``: the pure 4-spin model); any shape.
        precision: ``"float64"`` (default) or ``"float32"`` (warns: not enough for tricritical
            physics).
        n_scan: fields in the global scan.
    Returns:
        :class:`CanonicalState` (``s, mz, Mz, Mx, f, energy, entropy, n_minima, status``) of the
        broadcast shape.
    Raises:
        ValueError: a concrete argument is non-finite or outside its range (named in the message).
    """
    check("J", J, lower=0.0)
    check("h", h, lower=0.0)
    check("K", K, lower=0.0)
    check("T", T, lower=0.0)
    h, K, T, J = as_precision(precision, h, K, T, J)
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
    check("J", J, lower=0.0)
    check("h", h, lower=0.0)
    check("K", K, lower=0.0)
    h, K, J = as_precision("float64", h, K, J)
    st = canonical_state(LMG4(), LMGCouplings(J, K), h, jnp.zeros_like(h), n_scan=n_scan)
    return GroundState(s=st.s, mz=st.mz, Mz=st.Mz, Mx=st.Mx, energy=st.energy, status=st.status)

