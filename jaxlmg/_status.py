"""Per-point outcome codes shared by every engine (an ``int32`` array next to the results)."""

from __future__ import annotations

import enum

import jax.numpy as jnp

__all__ = ["Status", "describe"]


class Status(enum.IntEnum):
    """Outcome of the solve at one grid point.  Results at a point whose status is not ``OK``
    are NaN."""

    OK = 0
    #: the local polish did not meet its tolerance within the iteration budget
    NOT_CONVERGED = 1
    #: a non-finite number appeared (input or intermediate)
    NONFINITE = 2
    #: a parameter is outside the model's domain (e.g. h < 0 inside a traced batch)
    OUT_OF_DOMAIN = 3
    #: microcanonical energy outside [eps_min(h, K), eps_max(h, K)]
    ENERGY_OUT_OF_RANGE = 4
    #: a boundary asked for does not exist at these parameters (e.g. no critical field at T >= 2J)
    NO_TRANSITION = 5


_MESSAGES = {
    Status.OK: "ok",
    Status.NOT_CONVERGED: "local polish did not converge",
    Status.NONFINITE: "non-finite input or intermediate value",
    Status.OUT_OF_DOMAIN: "parameter outside the model's domain",
    Status.ENERGY_OUT_OF_RANGE: "energy outside [eps_min, eps_max]",
    Status.NO_TRANSITION: "no such transition at these parameters",
}


def describe(status) -> dict[str, int]:
    """Count the points of each status in a result's ``status`` array, by name (for
    reports/logs)."""
    import numpy as np

    codes = np.asarray(status).ravel()
    return {Status(c).name: int((codes == c).sum()) for c in np.unique(codes)}


def nan_unless_ok(status, x):
    """Replace ``x`` with NaN where ``status != OK`` (one bad point never poisons a batch)."""
    return jnp.where(status == Status.OK, x, jnp.nan)
