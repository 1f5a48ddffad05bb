"""What a sweep can evaluate: a registry of per-point kernels over named grid axes.

A *kernel* is a batched function that returns a NamedTuple of arrays of the broadcast shape.  Two
kinds:

* **model-generic** (``generic=True``; the built-in ``canonical``):
  ``fn(model, couplings, *axes, precision=...)`` with ``model`` a :mod:`jaxlmg.models` instance
  and ``couplings`` its couplings NamedTuple (each field an array over the points, or a scalar);
  ``axes`` are the kernel's own axes (``h, T``).  A spec's ``model`` key picks the model; its
  couplings are constants or further grid axes.
* **LMG4 kernels**: ``fn(*axes, J, precision=...)`` over fixed axes such as ``("h", "K", "T")``;
  usable with the default model (``lmg4``) only.

A sweep spec names an ``ensemble`` (= the kernel that fixes the grid axes) and the ``outputs`` to
store, chosen by NamedTuple field name.  Adding a per-point quantity to every sweep is one line::

    register_kernel("landau", lambda h, K, T, J, *, precision: jl.landau_coefficients(h, K, T, J),
                    ("h", "K", "T"), jl.LandauCoefficients)

after which a canonical spec may ask for ``outputs = ["Mz", "b2", "b4"]`` (bare field names are
looked up in the ensemble's kernel first, then in the other kernels over the same axes;
``"landau.b2"`` names the kernel explicitly).

This module sits on top of the numerical core and is imported only by the sweep layer; the core
never imports it.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

import jaxlmg as _jl

__all__ = [
    "AXES",
    "KERNELS",
    "FIELD_INFO",
    "LMG4_COUPLINGS",
    "available_outputs",
    "compatible",
    "Kernel",
    "kernel_fields",
    "register_kernel",
    "resolve_output",
]


class AxisInfo(NamedTuple):
    """Metadata of a grid axis: CF-style ``long_name``, ``units`` and the allowed lower bound."""

    long_name: str
    units: str
    lower: float | None  # None: any real value


#: Every axis a sweep grid may have.  Units: energies in units of J (k_B = 1).
AXES: dict[str, AxisInfo] = {
    "h": AxisInfo("transverse field h", "J", 0.0),
    "J": AxisInfo("coupling J (2-spin for LMG4, p-spin for PSpin)", "energy", 0.0),
    "K": AxisInfo("4-spin coupling K", "J", 0.0),
    "b": AxisInfo("longitudinal field b", "J", None),
    "T": AxisInfo("temperature T (k_B = 1)", "J", 0.0),
    "eps": AxisInfo("energy per spin epsilon", "J", None),
}

#: ``long_name`` and ``units`` stored with an output of this name (unknown names get none).
FIELD_INFO: dict[str, tuple[str, str]] = {
    "s": ("spin length s", "1"),
    "mz": ("cos(theta) (the paper's m_z), >= 0 branch", "1"),
    "Mz": ("magnetization per spin along z, s cos(theta)", "1"),
    "Mx": ("magnetization per spin along x, s sin(theta) cos(phi)", "1"),
    "f": ("free energy per spin, eq. (19)", "J"),
    "energy": ("energy per spin, eq. (13)", "J"),
    "entropy": ("entropy per spin, eq. (14)", "nats"),
    "n_minima": ("number of local minima of the landscape found by the global scan", "1"),
    "n_maxima": ("number of local entropy maxima found by the global scan", "1"),
    "beta": ("inverse temperature d sigma / d epsilon", "1/J"),
    "temperature": ("microcanonical temperature 1/beta", "J"),
    "specific_heat": ("microcanonical specific heat per spin", "1"),
    "b2": ("reduced Landau coefficient b2 of the paramagnet", "J"),
    "b4": ("reduced Landau coefficient b4 of the paramagnet", "J"),
    "status": ("jaxlmg.Status code (0 = OK); -1 = not computed yet", "1"),
}


#: The couplings of the default model (LMG4); an LMG4 kernel's axes may include them.
LMG4_COUPLINGS = ("J", "K")


class Kernel(NamedTuple):
    """A registered per-point quantity.

    Attributes:
        fn: an LMG4 kernel: ``fn(*axes, J, precision=...)`` -> NamedTuple of arrays, the axes
            as arrays of one common shape ``(n,)`` in the order of ``axes``, ``J`` a scalar or
            such an array.  A generic kernel: ``fn(model, couplings, *own_axes, precision=...)``
            (``own_axes``: :attr:`axes` less the LMG4 couplings).  Must be traceable (it runs
            inside ``jit``/``shard_map``).
        axes: names of the grid axes with the default model (LMG4), a subset of :data:`AXES`,
            e.g. ``("h", "K", "T")``.
        result: the NamedTuple class ``fn`` returns, if known (its field names are then read
            without tracing ``fn``; otherwise they are found by ``jax.eval_shape``).
        generic: ``fn`` takes any :mod:`jaxlmg.models` model and its couplings.
    """

    fn: Callable[..., Any]
    axes: tuple[str, ...]
    result: type | None = None
    generic: bool = False

    @property
    def own_axes(self) -> tuple[str, ...]:
        """The axes that are not couplings (a generic kernel's positional arguments)."""
        return tuple(a for a in self.axes if a not in LMG4_COUPLINGS) if self.generic \
            else self.axes


#: name -> Kernel.  The name of a kernel is also the ``ensemble`` a spec may ask for.
KERNELS: dict[str, Kernel] = {}


def register_kernel(name: str, fn: Callable[..., Any], axes, result: type | None = None, *,
                    generic: bool = False) -> None:
    """Make ``fn`` available to sweeps as ``ensemble = name`` and through its output fields.

    Args:
        name: registry key (a Python identifier).
        fn: ``fn(*axes, J, precision=...)`` returning a NamedTuple of arrays, or with
            ``generic=True`` ``fn(model, couplings, *own_axes, precision=...)`` (see
            :class:`Kernel`).
        axes: grid axis names with the default model (LMG4), each one of :data:`AXES`.
        result: optional NamedTuple class returned by ``fn`` (saves a trace when validating specs).
        generic: ``fn`` takes any :mod:`jaxlmg.models` model (then usable with every spec
            ``model``; else with ``model = "lmg4"`` only).
    Raises:
        ValueError: bad name or an unknown axis.
    """
    axes = tuple(axes)
    if not name.isidentifier():
        raise ValueError(f"kernel name must be a Python identifier, got {name!r}")
    unknown = [a for a in axes if a not in AXES]
    if unknown or not axes:
        raise ValueError(f"kernel {name!r}: axes must be a non-empty subset of {list(AXES)}, "
                         f"got {list(axes)}")
    if result is not None and not hasattr(result, "_fields"):
        raise ValueError(f"kernel {name!r}: result must be a NamedTuple class, got {result!r}")
    KERNELS[name] = Kernel(fn, axes, result, generic)
    kernel_fields.cache_clear()


@functools.cache
def kernel_fields(name: str) -> tuple[str, ...]:
    """Output field names of kernel ``name`` (from its result class, else by ``eval_shape``)."""
    k = KERNELS[name]
    if k.result is not None:
        return tuple(k.result._fields)
    args = [jax.ShapeDtypeStruct((2,), np.float64) for _ in k.own_axes]
    scalar = jax.ShapeDtypeStruct((), np.float64)
    if k.generic:
        def call(J, *a):
            return k.fn(_jl.LMG4(), _jl.LMGCouplings(J, J), *a, precision="float64")
    else:
        def call(J, *a):
            return k.fn(*a, J, precision="float64")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = jax.eval_shape(call, scalar, *args)
    if not hasattr(out, "_fields"):
        raise TypeError(f"kernel {name!r} must return a NamedTuple, got {type(out).__name__}")
    return tuple(out._fields)


def compatible(ensemble: str, kernel: str, model: str = "lmg4") -> bool:
    """Whether ``kernel``'s outputs can be stored by a sweep over ``ensemble`` with ``model``:
    the same (LMG4) axes, and the kernel takes the model (generic, or the model is LMG4)."""
    k = KERNELS[kernel]
    return k.axes == KERNELS[ensemble].axes and (k.generic or model == "lmg4")


def resolve_output(ensemble: str, output: str, model: str = "lmg4") -> tuple[str, str]:
    """``(kernel, field)`` for an output name of a sweep over ``ensemble``'s axes.

    ``"kernel.field"`` names the kernel; a bare ``"field"`` is looked up in ``ensemble`` first,
    then in every other kernel over the same axes that takes ``model`` (it must then be unique).

    Raises:
        KeyError: with a message listing the outputs available for this ensemble.
    """
    if "." in output:
        kname, _, field = output.partition(".")
        if kname in KERNELS and compatible(ensemble, kname, model) \
                and field in kernel_fields(kname):
            return kname, field
        raise KeyError(output)
    if output in kernel_fields(ensemble):
        return ensemble, output
    found = [k for k in KERNELS
             if k != ensemble and compatible(ensemble, k, model) and output in kernel_fields(k)]
    if len(found) == 1:
        return found[0], output
    if len(found) > 1:
        raise KeyError(f"{output!r} is ambiguous; name the kernel: "
                       + ", ".join(f"'{k}.{output}'" for k in found))
    raise KeyError(output)


def available_outputs(ensemble: str, model: str = "lmg4") -> list[str]:
    """Every output name a sweep over ``ensemble`` with ``model`` may store."""
    names = list(kernel_fields(ensemble))
    for k in KERNELS:
        if k != ensemble and compatible(ensemble, k, model):
            names += [f for f in kernel_fields(k) if f not in names]
    return names


def _canonical(model, couplings, h, T, *, precision):
    """``jaxlmg.canonical_state`` at the spec's precision (the sweep's canonical kernel)."""
    dtype = jnp.float64 if precision == "float64" else jnp.float32
    couplings = jax.tree_util.tree_map(lambda x: jnp.asarray(x, dtype), couplings)
    return _jl.canonical_state(model, couplings, jnp.asarray(h, dtype), jnp.asarray(T, dtype))


# --------------------------------------------------------------------------- built-in kernels
# One line per quantity.  Optional core functions are registered only when present.
register_kernel("canonical", _canonical, ("h", "K", "T"), _jl.CanonicalState,
                generic=True)
if hasattr(_jl, "microcanonical"):
    register_kernel("microcanonical",
                    lambda h, K, eps, J, *, precision: _jl.microcanonical(h, K, eps, J,
                                                                           precision=precision),
                    ("h", "K", "eps"), getattr(_jl, "MicrocanonicalState", None))
if hasattr(_jl, "landau_coefficients"):
    register_kernel("landau",
                    lambda h, K, T, J, *, precision: _jl.landau_coefficients(h, K, T, J),
                    ("h", "K", "T"), getattr(_jl, "LandauCoefficients", None))
