"""The canonical order parameter next to the second-order line (issue 11, item 5, second bullet).

Below the critical field ``h_c(T)`` the order parameter is ~``sqrt(h_c - h)``: at
``h_c - h = 1e-12`` the stationarity's constant term ``ρ₀`` is ~1e-12, so float64 alone loses
~1e-4 relative in ``Mz``.  References: the exact stationarity, solved with mpmath at 50 digits
for the exact float ``h`` given to the engine.  Also the double-double primitives under
``jax.jit`` against mpmath (XLA:CPU contracts Dekker's split into FMAs: the primitives must
survive compilation).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import mpmath as mp
import numpy as np
import pytest

import jaxlmg as jl
from jaxlmg import _compensated as C
from jaxlmg._near_critical import near_critical_root, paramagnet_residual
from jaxlmg.models import (
    LMG4,
    LMGCouplings,
    LongitudinalCouplings,
    LongitudinalLMG4,
    PSpin,
    PSpinCouplings,
    Reversed,
    interaction_derivative,
    taylor_coefficients,
)

mp.mp.dps = 50
DELTAS = (1e-6, 1e-8, 1e-10, 1e-12)
TEMPS = (0.5, 1.0, 1.9)
K_SMALL = 0.05  # second order at these T (checked: ρ₁ > 0 in the reference)


def _val(hi, lo):
    return mp.mpf(float(hi)) + mp.mpf(float(lo))


def _rel(x, ref):
    return abs(x - ref) / abs(ref)


# --------------------------------------------------------------------------- references (mpmath)


def _h_c(T, J=1.0):
    """Critical field: the paramagnet's stiffness u''(0) + h coth(h/T) = 0: h = 2J tanh(h/T)."""
    T = mp.mpf(T)
    return mp.findroot(lambda h: h - 2 * J * mp.tanh(h / T), (mp.mpf("1e-6"), mp.mpf(2 * J)),
                       solver="illinois")


def _rho(h, T, w):
    """The canonical stationarity / Mz in x = Mz²: 1 + w tanh(r/T)/r, r = sqrt(h² + x w²)."""
    h, T = mp.mpf(float(h)), mp.mpf(float(T))

    def rho(x):
        ww = w(x)
        r = mp.sqrt(h * h + x * ww * ww)
        return 1 + ww * mp.tanh(r / T) / r

    return rho


def _Mz_ref(h, T, w):
    """The ordered root of the stationarity next to h_c (0 where the paramagnet is stable)."""
    rho = _rho(h, T, w)
    r0, r1 = rho(0), mp.diff(rho, 0)
    assert r1 > 0  # second order: the small root exists exactly for r0 < 0
    if r0 >= 0:
        return mp.mpf(0)
    x_lin = -r0 / r1
    return mp.sqrt(mp.findroot(rho, (x_lin / 4, 4 * x_lin), solver="illinois"))


def _lmg4_w(J, K):
    return lambda x: -2 * mp.mpf(J) - 4 * mp.mpf(K) * x


def _fields(T):
    hc = float(_h_c(T))
    return [hc - d for d in DELTAS] + [hc, float(np.nextafter(hc, 3.0))]


# --------------------------------------------------------------------------- the order parameter


def _grid():
    pts = [(h, K, T) for T in TEMPS for K in (0.0, K_SMALL) for h in _fields(T)]
    return (np.array(a) for a in zip(*pts, strict=True))


def _check(Mz, h, K, T, tol=1e-8):
    bad = []
    for i in range(len(h)):
        ref = _Mz_ref(h[i], T[i], _lmg4_w(1.0, K[i]))
        ok = Mz[i] == 0 if ref == 0 else _rel(mp.mpf(float(Mz[i])), ref) <= tol
        if not ok:
            bad.append((h[i], K[i], T[i], float(Mz[i]), float(ref)))
    assert not bad, bad


def test_order_parameter_next_to_critical_field():
    """jl.canonical(h_c(T) - δ, K, T).Mz to 1e-8 relative for δ = 1e-6 ... 1e-12 (and 0 at and
    just above the float h_c exactly where the paramagnet is stable)."""
    h, K, T = _grid()
    st = jl.canonical(h, K, T)
    assert np.all(np.asarray(st.status) == 0)
    _check(np.asarray(st.Mz), h, K, T)
    # the ordered side really is tiny: sqrt-law check of the data, not of the engine
    assert float(np.max(np.asarray(st.Mz))) < 1e-2


def test_order_parameter_under_jit_and_pspin2():
    """The same under a user's jax.jit (the traced batching path), and PSpin(2) through
    canonical_state equals LMG4 with K = 0."""
    h, K, T = _grid()
    Mz = jax.jit(lambda h, K, T: jl.canonical(h, K, T).Mz)(h, K, T)
    _check(np.asarray(Mz), h, K, T)
    k0 = K == 0
    st = jl.canonical_state(PSpin(2), PSpinCouplings(1.0), h[k0], T[k0])
    _check(np.asarray(st.Mz), h[k0], K[k0], T[k0])
    np.testing.assert_allclose(np.asarray(st.Mz), np.asarray(Mz)[k0], rtol=1e-12, atol=0)


@pytest.mark.parametrize("T", [0.3, 1.0, 1.95])
def test_paramagnet_residual_is_compensated(T):
    """ρ₀ = 1 - 2J tanh(h/T)/h at float h next to h_c: absolute error far below float64's 1e-16."""
    hs = np.array(_fields(T))
    got = jax.jit(jax.vmap(lambda h: paramagnet_residual(LMG4(), LMGCouplings(1.0, 0.0), h, T)))(hs)
    for h, g in zip(hs, np.asarray(got), strict=True):
        ref = _rho(h, T, _lmg4_w(1.0, 0.0))(0)
        assert abs(mp.mpf(float(g)) - ref) <= 1e-15 * abs(ref) + 1e-30


class _Saturating:
    """A Z₂ user model without Taylor coefficients (autodiff fallback), not a polynomial:
    u = -J m² - K m⁴/(1 + m²)."""

    z2_symmetric = True

    def interaction(self, Mz, c):
        J, K = c
        m2 = Mz * Mz
        return -J * m2 - K * m2 * m2 / (1.0 + m2)

    def max_field(self, c):
        return 2.0 * abs(c[0]) + 4.0 * abs(c[1])

    def __hash__(self):
        return 7

    def __eq__(self, other):
        return isinstance(other, _Saturating)


def test_polish_for_a_model_without_taylor_coefficients():
    """The compensated polish of a non-polynomial user model, from a start 1e-3 off, reaches the
    exact root (its w - w₀ series is truncated at x³, far below 1e-8 for x < 1e-6)."""
    J, K, T = 1.0, 0.1, 1.0
    w = lambda x: -2 * J - K * (4 * x + 2 * x * x) / (1 + x) ** 2  # noqa: E731  u'/m, exact
    hs = np.array([float(_h_c(T)) - d for d in DELTAS])
    refs = [_Mz_ref(h, T, w) for h in hs]
    start = np.array([float(r) for r in refs]) * (1 + 1e-3)
    out = jax.jit(jax.vmap(lambda h, m: near_critical_root(_Saturating(), (J, K), h, T, m)))(
        hs, start)
    assert np.all(np.asarray(out.apply))
    for m, ref in zip(np.asarray(out.Mz), refs, strict=True):
        assert _rel(mp.mpf(float(m)), ref) <= 1e-8


def test_taylor_coefficients():
    """Exact coefficients of the built-in models; the autodiff fallback agrees."""
    c = LMGCouplings(0.7, 0.3)
    assert taylor_coefficients(LMG4(), c, 4) == (-0.7, -0.3, 0.0, 0.0)
    assert taylor_coefficients(PSpin(4), PSpinCouplings(0.7), 3) == (0.0, -0.7, 0.0)
    assert taylor_coefficients(PSpin(2), PSpinCouplings(0.7), 1) == (-0.7,)
    fb = taylor_coefficients(_Saturating(), (0.7, 0.3), 4)  # -J x - K x² + K x³ - K x⁴
    np.testing.assert_allclose(np.array(fb), [-0.7, -0.3, 0.3, -0.3], rtol=1e-14, atol=1e-15)
    with pytest.raises(ValueError, match="Z2"):
        taylor_coefficients(PSpin(3), PSpinCouplings(1.0), 2)


# --------------------------------------------------------------------------- double-double


def _random(n, seed, lo=-8, hi=8):
    rng = np.random.default_rng(seed)
    return rng.uniform(-3, 3, n) * 10.0 ** rng.integers(lo, hi, n)


def test_double_double_primitives_under_jit():
    """two_sum, two_prod exact; two_div, dd_add, dd_mul, dd_div to 1e-30 relative, compiled."""
    a, b = _random(300, 1), _random(300, 2)
    al, bl = a * 2.0 ** -60 * _random(300, 3, 0, 1), b * 2.0 ** -60 * _random(300, 4, 0, 1)
    f = jax.jit(jax.vmap(lambda a, b, al, bl: (
        C.two_sum(a, b), C.two_prod(a, b), C.two_div(a, b), C.dd_add((a, al), (b, bl)),
        C.dd_mul((a, al), (b, bl)), C.dd_div((a, al), (b, bl)))))
    s, p, q, ad, mu, dv = jax.tree_util.tree_map(np.asarray, f(a, b, al, bl))
    for i in range(len(a)):
        A, B = _val(a[i], al[i]), _val(b[i], bl[i])
        assert _val(s[0][i], s[1][i]) == mp.mpf(float(a[i])) + mp.mpf(float(b[i]))
        assert _val(p[0][i], p[1][i]) == mp.mpf(float(a[i])) * mp.mpf(float(b[i]))
        assert _rel(_val(q[0][i], q[1][i]), mp.mpf(float(a[i])) / mp.mpf(float(b[i]))) < 1e-30
        assert abs(_val(ad[0][i], ad[1][i]) - (A + B)) < 1e-30 * (abs(A) + abs(B))
        assert _rel(_val(mu[0][i], mu[1][i]), A * B) < 1e-30
        assert _rel(_val(dv[0][i], dv[1][i]), A / B) < 1e-30


def test_double_double_expm1_and_tanh_under_jit():
    """dd_expm1 over its whole range (relative error ~1e-32 (10 + |x|): the conditioning of exp
    for a double-double argument) and dd_tanh of h/T (a double-double), 1e-30 relative."""
    x = np.concatenate([_random(200, 5, -20, 2), [-700.0, -40.0, -1e-9, 0.3465, 700.0]])
    xl = x * 1e-17 * _random(205, 6, 0, 1)
    e = jax.tree_util.tree_map(np.asarray, jax.jit(jax.vmap(lambda a, b: C.dd_expm1((a, b))))(
        x, xl))
    for i in range(len(x)):
        X = _val(x[i], xl[i])
        assert _rel(_val(e[0][i], e[1][i]), mp.expm1(X)) < 1e-31 * (10 + abs(x[i])), x[i]
    h = np.concatenate([np.abs(_random(100, 7, -6, 2)), [1e-12, 0.74, 2.0, 40.0]])
    T = 1.9
    y = jax.jit(jax.vmap(lambda h: C.dd_tanh(C.two_div(h, T))))(h)
    for i in range(len(h)):
        ref = mp.tanh(mp.mpf(float(h[i])) / mp.mpf(T))
        assert _rel(_val(y[0][i], y[1][i]), ref) < 1e-30, h[i]


def test_split_is_exact_under_jit():
    """The bitmask split: hi + lo == a exactly, hi with at most 26 significant bits."""
    a = _random(500, 8, -280, 300)  # (XLA:CPU flushes subnormal lo parts to 0)
    hi, lo = (np.asarray(v) for v in jax.jit(jax.vmap(C.split))(a))
    assert np.all(hi + lo == a)
    m = np.frexp(hi)[0] * 2.0 ** 26
    assert np.all(m == np.round(m))
    assert np.all(np.abs(lo) <= np.abs(a) * 2.0 ** -25)
    assert jnp.asarray(C.split(np.float32(1.1))[0]).dtype == jnp.float32


def test_closed_form_interaction_derivatives():
    """LMG4's, LongitudinalLMG4's and a reversed model's ``u^(k)`` (k = 0..5, closed form where
    the model has one) equal nested autodiff of their ``interaction``, as the engines use it for
    models without the method."""
    cases = [(LMG4(), LMGCouplings(0.7, 0.3)),
             (LongitudinalLMG4(), LongitudinalCouplings(0.7, 0.3, 0.05)),
             (Reversed(LMG4()), LMGCouplings(0.7, 0.3)), (Reversed(PSpin(3)), PSpinCouplings(0.7))]
    for model, c in cases:
        assert hasattr(model, "interaction_derivative")
        for k in range(6):
            f = lambda m, model=model, c=c: model.interaction(m, c)  # noqa: E731
            for _ in range(k):
                f = jax.grad(f)
            for m in (0.0, 0.3, -0.8, 1.0):
                want = float(f(jnp.float64(m)))
                got = float(interaction_derivative(model, c, jnp.float64(m), k))
                assert abs(got - want) <= 1e-14 * (1 + abs(want)), (model, k, m, got, want)
