"""Exact finite-N spectrum and thermodynamics (eqs. 1, 4-10); see :mod:`.solvers` (interim)."""

from .solvers import *  # noqa: F403
from .solvers import __all__ as __all__  # noqa: F401
