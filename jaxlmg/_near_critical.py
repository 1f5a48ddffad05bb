"""The canonical ordered state next to a second-order line, to full relative precision.

For a Z₂ model the canonical stationarity divided by ``Mz`` is, in ``x = Mz²``,

    ``ρ(x) = 1 + w(m) f(r)``,  ``w = u'(m)/m``,  ``f(r) = tanh(r/T)/r``,  ``r = sqrt(h² + x w²)``

(:func:`jaxlmg._canonical.stationarity` written in ``m``; Campa, Dauxois, Ruffo, Phys. Rep. 480,
57 (2009) for the mean-field self-consistency).  Next to the critical field ``h_c(T)`` its ordered
root is ``x ≈ -ρ₀/ρ₁`` with ``ρ₀ = ρ(0) = 1 + u''(0) tanh(h/T)/h`` small: evaluated in float64,
``ρ₀`` carries an absolute error ~1e-16, so the root loses ``1e-16/|ρ₀|`` relative (``Mz`` off by
5e-4 relative at ``h_c - h = 1e-12``).  Here

* ``ρ₀`` is computed in double-double arithmetic (:mod:`jaxlmg._compensated`): ``y = h/T``
  unrounded, ``tanh y`` and the sum ``1 + u''(0) tanh(y)/h`` compensated, with ``u''(0) = 2 a₁``
  from the model's exact Taylor coefficients (:func:`jaxlmg.models.taylor_coefficients`);
* ``ρ(x) - ρ₀ = (w - w₀) f(r) + w₀ (f(r) - f(h))`` is computed without cancellation:
  ``w - w₀ = Σ_{k>=2} 2k a_k x^(k-1)`` and, with ``d = r - h = x w²/(r + h)``,
  ``f(r) - f(h) = (d/r) [tanhc(d/T) cosh(d/T) sech(r/T) sech(h/T)/T - tanh(h/T)/h]`` (exact,
  from ``tanh a - tanh b = tanh(a - b)(1 - tanh a tanh b)``);
* the small root is polished by Newton in ``x`` on ``ρ₀ + [ρ(x) - ρ₀]``.

The canonical engine applies it only where it matters (:func:`needs_polish`: ``|ρ₀| < RHO_SMALL``,
``x < X_SMALL``, ``T > 0``; its fast pass flags those points for the thorough pass, so the bulk of
a batch pays nothing); derivatives still come from the implicit function theorem on the float
stationarity.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from ._compensated import dd_add, dd_div, dd_mul, dd_tanh, two_div
from ._search import newton_steps
from .models import CollectiveSpinModel, taylor_coefficients

__all__ = ["NearCritical", "near_critical_root", "needs_polish", "paramagnet_residual",
           "residual_excess"]

#: Taylor coefficients of u used in ``w - w₀`` (exact for polynomial models up to ``Mz⁸``)
N_COEF = 4
#: ``|ρ₀|`` below which the compensated root replaces the float one (float: ``1e-16/|ρ₀|`` rel.)
RHO_SMALL = 1e-4
#: largest ``x = Mz²`` polished (``w - w₀`` truncated at ``x³`` for non-polynomial models)
X_SMALL = 1e-3
N_NEWTON = 4


def paramagnet_residual(model: CollectiveSpinModel, couplings, h, T):
    """``ρ₀ = 1 + u''(0) tanh(h/T)/h`` in double-double, rounded once (scalars, ``h, T > 0``).

    The sign of ``ρ₀`` is that of the paramagnetic stiffness (eq. 25 for LMG4:
    ``ρ₀ = 1 - 2J tanh(h/T)/h``); its absolute error is ~1e-32 instead of ~1e-16.
    """
    (a1,) = taylor_coefficients(model, couplings, 1)
    zero = jnp.zeros_like(h)
    w0 = 2.0 * a1 + zero  # exact
    t = dd_tanh(two_div(h, T))
    p = dd_mul(dd_div(t, (h, zero)), (w0, zero))
    return dd_add(p, (jnp.ones_like(h), zero))[0]


def residual_excess(model: CollectiveSpinModel, couplings, h, T, x, coefs=None):
    """``ρ(x) - ρ₀`` without cancellation (scalars, ``h, T > 0``, ``x >= 0``; see the module
    docstring); ``coefs`` the model's Taylor coefficients ``a₁ ... a_N`` (computed if ``None``)."""
    a = taylor_coefficients(model, couplings, N_COEF) if coefs is None else coefs
    w0 = 2.0 * a[0]
    dw = jnp.zeros_like(x)
    for k in range(len(a), 1, -1):  # Horner: w - w0 = Σ_{k>=2} 2k a_k x^(k-1)
        dw = x * (2.0 * k * a[k - 1] + dw)
    w = w0 + dw
    xw2 = x * w * w
    r = jnp.sqrt(h * h + xw2)
    d = xw2 / (r + h)
    inv_T = 1.0 / T
    yh, yr, u = h * inv_T, r * inv_T, d * inv_T
    qh, qr = jnp.exp(-yh), jnp.exp(-yr)
    t_h = -jnp.expm1(-2.0 * yh) / (1.0 + qh * qh)
    t_r = -jnp.expm1(-2.0 * yr) / (1.0 + qr * qr)
    sech_prod = 4.0 * qh * qr / ((1.0 + qh * qh) * (1.0 + qr * qr))
    small = u < 1e-4
    u_safe = jnp.where(small, 1.0, u)
    tanhc = jnp.where(small, 1.0 - u * u / 3.0, jnp.tanh(u_safe) / u_safe)
    df = (d / r) * (tanhc * jnp.cosh(u) * sech_prod * inv_T - t_h / h)  # f(r) - f(h)
    return dw * (t_r / r) + w0 * df


def needs_polish(model: CollectiveSpinModel, couplings, h, T, Mz):
    """Whether :func:`near_critical_root` applies at this point (scalars; cheap, float64):
    ``T, h > 0``, ``|ρ₀| < RHO_SMALL`` (``ρ₀`` in float) and ``Mz² < X_SMALL`` (``Mz`` the float
    engine's global minimum, 0 for the paramagnet)."""
    ok = (T > 0) & (h > 0) & jnp.isfinite(h) & jnp.isfinite(T) & jnp.isfinite(Mz)
    (a1,) = taylor_coefficients(model, couplings, 1)
    T_s, h_s = jnp.where(ok, T, 1.0), jnp.where(ok, h, 1.0)
    rho0 = 1.0 + 2.0 * a1 * jnp.tanh(h_s / T_s) / h_s
    return ok & (jnp.abs(rho0) < RHO_SMALL) & (Mz * Mz < X_SMALL)


class NearCritical(NamedTuple):
    """The compensated small-``x`` root (scalars).

    Attributes:
        Mz: the order parameter ``sqrt(x)`` (0 for the paramagnet).
        apply: the point is next to a second-order line and the polish converged: ``Mz``
            replaces the float result.
        rho0: ``ρ₀`` (compensated).
    """

    Mz: Any
    apply: Any
    rho0: Any


def near_critical_root(model: CollectiveSpinModel, couplings, h, T, Mz) -> NearCritical:
    """Polish the canonical state ``Mz >= 0`` found in float64 (the engine's global minimum, 0 for
    the paramagnet) next to a second-order line (ONE point, scalars; Z₂ models).

    Where :func:`needs_polish`: Newton in ``x`` on ``ρ₀ + [ρ(x) - ρ₀]`` from
    ``x = Mz²``, or from ``-ρ₀/ρ₁`` where the float engine returned the paramagnet but the
    compensated ``ρ₀ < 0`` makes it a maximum (``ρ₁ = ρ'(0) > 0``: second order); where the float
    engine returned a tiny ordered state but ``ρ₀ > 0`` and ``ρ₁ > 0`` (no small root), the
    paramagnet.
    """
    z = jnp.zeros_like(h)
    ok_in = (T > 0) & (h > 0) & jnp.isfinite(h) & jnp.isfinite(T) & jnp.isfinite(Mz)
    T_s = jnp.where(ok_in, T, 1.0)
    h_s = jnp.where(ok_in, h, 1.0)
    coefs = taylor_coefficients(model, couplings, N_COEF)
    rho0 = paramagnet_residual(model, couplings, h_s, T_s)

    def resid(x):
        return rho0 + residual_excess(model, couplings, h_s, T_s, x, coefs)

    _, rho1 = jax.jvp(resid, (z,), (jnp.ones_like(z),))
    x_eng = Mz * Mz
    para = x_eng == 0
    second = rho1 > 0
    x = jnp.where(para, -rho0 / jnp.where(second, rho1, 1.0), x_eng)
    x, step = newton_steps(lambda y: jax.jvp(resid, (y,), (jnp.ones_like(y),)), x, N_NEWTON)
    converged = jnp.isfinite(x) & (jnp.abs(step) <= 1e-13 * jnp.abs(x) + 1e-300)
    near = needs_polish(model, couplings, h, T, Mz)
    # the float engine's paramagnet is a maximum: the small ordered root (second order)
    from_para = para & (rho0 < 0) & second & (x > 0)
    # the float engine's tiny ordered state: its compensated root, or none (then the paramagnet)
    to_para = ~para & (rho0 > 0) & second & (x <= 0)
    polished = ~para & (x > 0)
    apply = near & converged & (from_para | to_para | polished)
    Mz_new = jnp.where(to_para, 0.0, jnp.sqrt(jnp.maximum(x, 0.0)))
    return NearCritical(Mz=jnp.where(apply, Mz_new, Mz), apply=apply, rho0=rho0)
