"""The built-in models a sweep spec may name (``model = "..."``), their options and couplings.

A spec selects a model of :mod:`jaxlmg.models` by name; each of the model's couplings is either a
constant (a top-level key, ``K = 0.5``) or a grid axis (``[grid] K = {...}``).  ``J`` defaults to
1 (the energy unit); every other coupling must be given.

=====================  ===================================  ==========  ======================
``model``              jaxlmg model                         options     couplings
=====================  ===================================  ==========  ======================
``"lmg4"`` (default)   :class:`jaxlmg.LMG4`                 --          ``J > 0``, ``K >= 0``
``"pspin"``            :class:`jaxlmg.PSpin` ``(p)``        ``p >= 2``  ``J > 0``
``"longitudinal_lmg4"`` :class:`jaxlmg.LongitudinalLMG4`    --          ``J > 0``, ``K >= 0``,
                                                                        ``b`` (any real)
=====================  ===================================  ==========  ======================
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from .. import models

__all__ = ["COUPLING_DOMAINS", "DEFAULT_MODEL", "SPEC_MODELS", "SpecModel", "make_model"]

DEFAULT_MODEL = "lmg4"

#: Allowed range of each coupling: ``(lower bound or None, strict)``.
COUPLING_DOMAINS: dict[str, tuple[float | None, bool]] = {
    "J": (0.0, True),
    "K": (0.0, False),
    "b": (None, False),
}

#: Default value of a coupling that may be omitted (``J`` is the energy unit).
COUPLING_DEFAULTS: dict[str, float] = {"J": 1.0}


class SpecModel(NamedTuple):
    """A model a spec may name.

    Attributes:
        build: ``build(**options)`` -> the (hashable, static) :mod:`jaxlmg.models` instance.
        couplings: the couplings NamedTuple class; its fields, in order, are the couplings.
        options: names of the model's integer options (e.g. ``("p",)``), all required.
        summary: one line for error messages and ``jaxlmg info``.
    """

    build: Callable[..., Any]
    couplings: type
    options: tuple[str, ...]
    summary: str

    @property
    def coupling_names(self) -> tuple[str, ...]:
        return tuple(self.couplings._fields)


SPEC_MODELS: dict[str, SpecModel] = {
    "lmg4": SpecModel(models.LMG4, models.LMGCouplings, (),
                      "LMG4, u = -J Mz^2 - K Mz^4 (couplings J, K)"),
    "pspin": SpecModel(lambda p: models.PSpin(p), models.PSpinCouplings, ("p",),
                       "PSpin(p), u = -J Mz^p (option p, an integer >= 2; coupling J)"),
    "longitudinal_lmg4": SpecModel(models.LongitudinalLMG4,
                                   models.LongitudinalCouplings, (),
                                   "LongitudinalLMG4, u = -J Mz^2 - K Mz^4 - b Mz "
                                   "(couplings J, K, b)"),
}


def make_model(name: str, options: dict[str, int]):
    """The :mod:`jaxlmg.models` instance for a validated spec's ``model`` and options.

    Raises:
        KeyError: unknown model name (specs are validated before this is called).
    """
    return SPEC_MODELS[name].build(**options)
