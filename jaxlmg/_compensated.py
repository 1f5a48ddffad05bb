"""Compensated (double-double) arithmetic: the few primitives jaxlmg needs where one rounding of a
small difference decides the answer (next to a critical line, next to the MCE tricritical
condition).  Pure JAX, elementwise, jit-safe.

A double-double ``(hi, lo)`` represents the unevaluated sum ``hi + lo`` with ``|lo| <= ulp(hi)/2``,
about 106 significand bits in float64 (Dekker, Numer. Math. 18, 224 (1971); Hida, Li, Bailey,
"Library for double-double and quad-double arithmetic" (QD), 2001).

**Exact splitting under XLA.**  Dekker's split ``t = (2^27 + 1) a; a_hi = t - (t - a)`` is not safe
under ``jax.jit``: XLA:CPU contracts ``t - a`` with the product into a fused multiply-add and the
split is no longer exact.  :func:`split` clears the low significand bits through an integer
bitcast instead, which no compiler rewrites.  The other primitives only use products whose exact
value is representable (so a contraction into an FMA cannot change them) and sums whose order is
fixed (XLA does not reassociate floating-point additions).

Rounding errors carry no derivative (``stop_gradient``): a derivative through a compensated
expression is the derivative of its leading (float) part.
"""

from __future__ import annotations

import math
from fractions import Fraction

import jax
import jax.numpy as jnp

__all__ = ["dd_add", "dd_div", "dd_expm1", "dd_mul", "dd_tanh", "split", "two_div", "two_prod",
           "two_sum"]

#: ln 2 as a double-double
_LN2 = (0.6931471805599453, 2.3190468138462996e-17)
#: Taylor terms of expm1 after the reduction |r| <= ln2/2/2^_SQUARINGS (next term < 1e-33 r)
_SQUARINGS = 10
_N_TAYLOR = 9


def _dd_const(q: Fraction):
    hi = float(q)
    return hi, float(q - Fraction(hi))


#: 1/k! as double-doubles, k = 0.._N_TAYLOR
_INV_FACT = tuple(_dd_const(Fraction(1, math.factorial(k))) for k in range(_N_TAYLOR + 1))


def two_sum(a, b):
    """``a + b = s + e`` exactly (Knuth's TwoSum; any magnitudes).  Returns ``(s, e)``."""
    s = a + b
    bb = s - a
    e = (a - (s - bb)) + (b - bb)
    return s, jax.lax.stop_gradient(e)


def _quick_two_sum(a, b):
    """``a + b = s + e`` exactly when ``|a| >= |b|`` (Dekker's FastTwoSum)."""
    s = a + b
    return s, jax.lax.stop_gradient(b - (s - a))


def split(a):
    """``a = hi + lo`` exactly, ``hi`` with the upper half of the significand (26 bits in float64,
    12 in float32) by clearing the low bits of its integer representation; ``lo = a - hi``."""
    a = jax.lax.stop_gradient(jnp.asarray(a))
    if a.dtype == jnp.float64:
        itype, low = jnp.int64, 27
    elif a.dtype == jnp.float32:
        itype, low = jnp.int32, 12
    else:
        raise ValueError(f"split: a must be float32 or float64, got {a.dtype}")
    bits = jax.lax.bitcast_convert_type(a, itype)
    hi = jax.lax.bitcast_convert_type(bits & jnp.asarray(~((1 << low) - 1), itype), a.dtype)
    return hi, a - hi


def two_prod(a, b):
    """``a b = p + e`` exactly (Dekker's TwoProduct with the bitmask :func:`split`; the error
    of the last partial product is below ``2^-100 |a b|``).  Returns ``(p, e)``."""
    p = a * b
    ah, al = split(a)
    bh, bl = split(b)
    e = ((ah * bh - jax.lax.stop_gradient(p)) + ah * bl + al * bh) + al * bl
    return p, jax.lax.stop_gradient(e)


def dd_add(x, y):
    """Sum of two double-doubles (QD's accurate ``ieee_add``); a float ``a`` is ``(a, 0)``."""
    s, e = two_sum(x[0], y[0])
    t, f = two_sum(x[1], y[1])
    s, e = _quick_two_sum(s, e + t)
    return _quick_two_sum(s, e + f)


def dd_mul(x, y):
    """Product of two double-doubles."""
    p, e = two_prod(x[0], y[0])
    return _quick_two_sum(p, e + (x[0] * y[1] + x[1] * y[0]))


def dd_div(x, y):
    """Quotient ``x / y`` of two double-doubles (three correction steps, QD's ``accurate_div``)."""
    q1 = x[0] / y[0]
    r = dd_add(x, dd_mul((-q1, jnp.zeros_like(q1)), y))
    q2 = r[0] / y[0]
    r = dd_add(r, dd_mul((-q2, jnp.zeros_like(q2)), y))
    q3 = r[0] / y[0]
    q = _quick_two_sum(q1, q2)
    return dd_add(q, (q3, jnp.zeros_like(q3)))


def two_div(a, b):
    """``a / b`` of two floats as a double-double (``b != 0``)."""
    q = a / b
    p, e = two_prod(q, b)
    lo = ((a - p) - e) / b  # a - p is exact (Sterbenz)
    return _quick_two_sum(q, jax.lax.stop_gradient(lo))


def dd_expm1(x):
    """``exp(x) - 1`` of a double-double ``x <= 709`` to ~1e-31 relative.

    ``x = k ln2 + r`` (``ln 2`` as a double-double), ``expm1(r / 2^10)`` by its Taylor series, then
    ``expm1(2t) = e (2 + e)`` ten times, then ``2^k (1 + e) - 1``; arguments below ``-745`` give
    ``-1``.
    """
    hi = x[0]
    k = jnp.clip(jnp.round(hi / _LN2[0]), -1100.0, 1023.0)
    k = jnp.where(jnp.isfinite(k), k, 0.0)
    kl = dd_mul((k, jnp.zeros_like(k)), (jnp.full_like(k, _LN2[0]), jnp.full_like(k, _LN2[1])))
    r = dd_add(x, (-kl[0], -kl[1]))
    scale = 2.0 ** -_SQUARINGS  # exact
    r = (r[0] * scale, r[1] * scale)
    # (loops, not unrolled: a smaller program compiles faster inside every engine kernel)
    inv_fact = jnp.asarray(_INV_FACT, hi.dtype)

    def horner(i, p):  # p = 1/n! + r p, n = _N_TAYLOR - 1 ... 1: p -> expm1(r)/r
        c = inv_fact[_N_TAYLOR - 1 - i]
        return dd_add(dd_mul(p, r), (c[0] + 0.0 * hi, c[1] + 0.0 * hi))

    top = inv_fact[_N_TAYLOR]
    p = jax.lax.fori_loop(0, _N_TAYLOR - 1, horner, (top[0] + 0.0 * hi, top[1] + 0.0 * hi))
    e = dd_mul(p, r)

    def square(_, e):  # expm1(2t) = expm1(t) (2 + expm1(t))
        return dd_mul(e, dd_add(e, (jnp.full_like(hi, 2.0), jnp.zeros_like(hi))))

    e = jax.lax.fori_loop(0, _SQUARINGS, square, e)
    two_k = jnp.ldexp(jnp.ones_like(hi), k.astype(jnp.int32))
    e = (e[0] * two_k, e[1] * two_k)  # exact scaling (or underflow to 0 where 2^k e is negligible)
    return dd_add(e, two_sum(two_k, -jnp.ones_like(hi)))


def dd_tanh(y):
    """``tanh(y)`` of a double-double ``y >= 0`` to ~1e-31 relative: ``-E/(2 + E)``,
    ``E = expm1(-2y)`` (no cancellation for small ``y``, exact 1 for large)."""
    E = dd_expm1((-2.0 * y[0], -2.0 * y[1]))
    return dd_div((-E[0], -E[1]), dd_add(E, (jnp.full_like(E[0], 2.0), jnp.zeros_like(E[0]))))
