"""Implicit differentiation of root-finding: ``x*(p)`` with ``G(x*, p) = 0``.

The forward value comes from any solver (bisection, safeguarded Newton, a global scan...), which
is never differentiated; derivatives come from the implicit function theorem,
``dx* = -(∂G/∂x)⁻¹ (∂G/∂p) dp``, as a ``jax.custom_jvp`` rule.  The rule is itself written in
differentiable JAX, so higher derivatives (``jax.hessian``, nested ``jvp``) work too, and
``jax.grad`` works by transposing the (linear) rule.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp


def implicit_root(G: Callable, solver: Callable) -> Callable:
    """Return ``x_star(p)``: the root of ``G(x, p) = 0`` in ``x`` found by ``solver(p)``.

    Args:
        G: residual ``G(x, p) -> array(n)``; ``x`` an ``array(n)``, ``p`` any pytree of arrays.
        solver: ``solver(p) -> array(n)``, the root (NaN where there is none); not differentiated.
    Returns:
        A function ``p -> array(n)`` with implicit-function-theorem derivatives (NaN where the
        root is NaN or ``∂G/∂x`` is singular).
    """

    @jax.custom_jvp
    def x_star(p):
        return jax.lax.stop_gradient(solver(p))

    @x_star.defjvp
    def _jvp(primals, tangents):
        (p,), (dp,) = primals, tangents
        x = x_star(p)
        Gx = jax.jacfwd(G, argnums=0)(x, p)
        _, Gp_dp = jax.jvp(lambda q: G(x, q), (p,), (dp,))
        return x, -jnp.linalg.solve(Gx, Gp_dp)

    return x_star
