"""The one implicit-differentiation rule: derivatives of a root ``x*(p)`` of ``G(x*, p) = 0``.

The forward value comes from any solver (bisection, safeguarded Newton, the certified search...),
which is never differentiated; derivatives come from the implicit function theorem,
``dx* = -(∂G/∂x)⁻¹ (∂G/∂p) dp``, as a ``jax.custom_jvp`` rule.  The rule is itself written in
differentiable JAX, so higher derivatives (``jax.hessian``, nested ``jvp``) work too, and reverse
mode (``jax.grad``) works by transposing the (linear) rule.  Every solver of jaxlmg with a custom
derivative goes through :func:`implicit_solution` (Optimistix's ``implicit_jvp`` follows the same
idea).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp

__all__ = ["implicit_root", "implicit_solution"]


@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def _solution(G, x, p):
    return x


@_solution.defjvp
def _solution_jvp(G, primals, tangents):
    x, p = primals
    _, dp = tangents
    x = _solution(G, x, p)  # through the rule itself: nested derivatives apply it again
    _, Gp_dp = jax.jvp(lambda q: G(x, q), (p,), (dp,))
    if jnp.ndim(x) == 0:
        Gx = jax.grad(G, argnums=0)(x, p)
        return x, -Gp_dp / Gx
    Gx = jax.jacfwd(G, argnums=0)(x, p)
    return x, -jnp.linalg.solve(Gx, Gp_dp)


def implicit_solution(G: Callable, x, p):
    """``x``, a root of ``G(·, p)`` found by any solver, with implicit derivatives in ``p``.

    Args:
        G: residual ``G(x, p)``: ``x`` a scalar or ``array(n)``, ``p`` any pytree of arrays; the
            result has the shape of ``x``.  ``G`` must be a hashable function (module-level or
            ``functools.partial`` of one), since it is a static argument of the rule.
        x: the root (its own derivatives are discarded: ``stop_gradient``).
        p: the parameters to differentiate in.
    Returns:
        ``x``, whose derivatives are ``-(∂G/∂x)⁻¹ ∂G/∂p`` (NaN where ``∂G/∂x`` is singular).
    """
    return _solution(G, jax.lax.stop_gradient(x), p)


def implicit_root(G: Callable, solver: Callable) -> Callable:
    """Return ``x_star(p)``: the root of ``G(x, p) = 0`` in ``x`` found by ``solver(p)``, with
    derivatives from :func:`implicit_solution`.

    Args:
        G: residual ``G(x, p) -> array(n)``; ``x`` an ``array(n)``, ``p`` any pytree of arrays.
        solver: ``solver(p) -> array(n)``, the root (NaN where there is none); not differentiated.
    """

    def x_star(p):
        return implicit_solution(G, solver(jax.lax.stop_gradient(p)), p)

    return x_star
