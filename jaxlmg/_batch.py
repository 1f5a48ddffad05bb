"""The one batching path of every engine: broadcast, flatten, pad, chunk, and spread over cores.

Engines write a kernel for ONE point (scalars in, a NamedTuple of scalars out).  :func:`batched`
lifts it to NumPy-broadcast arrays of any shape:

* inside a user's transformation (``jit``, ``vmap``, ``grad``: traced arguments) the whole batch is
  one ``jax.lax.map`` over ``vmap``-ed blocks of ``batch_size`` points, so derivatives flow through
  the kernel's own rules (implicit differentiation; solver loops are never differentiated);
* for concrete arguments the flat batch is padded to one of a few sizes (:data:`BUCKETS`), so
  that calls of any shape reuse a handful of compiled programs; a batch larger than one chunk is
  cut into chunks of a fixed size that run from one thread per CPU core (JAX releases the GIL
  while XLA computes: one XLA:CPU program keeps only ~1.4 of 2 cores busy), then concatenated.
  A point's numbers do not depend on the batch it is computed in (to rounding).

A sweep uses the same jitted chunk function, so a direct call and a sweep compute the same thing.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import jax
import jax.numpy as jnp

from ._host import cpu_cores
from ._validate import is_traced

__all__ = ["batched", "broadcast_flat", "flat_kernel"]

#: Points per chunk of a concrete call (a multiple of every block size used below).
CHUNK = 16384
#: Points evaluated together inside a chunk by ``vmap`` (bounds the memory of one step).
BLOCK = 1024
#: Points recomputed together by the thorough pass of an escalating kernel.
RETRY = 64
#: Padded sizes of a concrete call of at most ``CHUNK`` points: every call of a kernel reuses one
#: of these few compiled programs (compiling a certified search takes seconds; running a padded
#: point, microseconds).
BUCKETS = (64, BLOCK, CHUNK)
#: Concrete calls padded to at most this many points skip the fast pass of an escalating kernel
#: and run its thorough pass on every point: the same numbers (the fast pass's result stands only
#: where it is already the thorough one), from a program about half the size.  The fast pass
#: pays off from a thousand points (3x there); on a few dozen the thorough pass costs about a
#: millisecond, and compiling both passes several seconds more.
THOROUGH_ONLY = BUCKETS[0]


def broadcast_flat(trees, dtype=None):
    """Broadcast every leaf of ``trees`` (NumPy rules) and flatten them.

    Args:
        trees: a pytree (e.g. ``(couplings, h, T)``) of scalars/arrays.
        dtype: floating dtype for every leaf; default: the result type of the leaves, promoted to
            the default float if it is not floating.
    Returns:
        ``(flat_trees, shape)``: the same pytree with 1-D leaves of ``prod(shape)`` (>= 1)
        entries, and the broadcast shape.
    """
    leaves, treedef = jax.tree_util.tree_flatten(trees)
    arrays = [jnp.asarray(x) for x in leaves]
    if dtype is None:
        dtype = jnp.result_type(*[a.dtype for a in arrays])
        if not jnp.issubdtype(dtype, jnp.floating):
            dtype = jnp.result_type(float)
    arrays = jnp.broadcast_arrays(*[a.astype(dtype) for a in arrays])
    shape = arrays[0].shape
    flat = [a.reshape(-1) for a in arrays]
    return jax.tree_util.tree_unflatten(treedef, flat), shape


@functools.cache
def flat_kernel(point_fn: Callable, static: tuple = (), block: int = BLOCK,
                escalate: tuple | None = None, thorough: bool = False) -> Callable:
    """``jit`` of ``point_fn`` mapped over 1-D argument arrays (``lax.map`` of ``vmap`` blocks).

    Args:
        point_fn: the one-point kernel.
        static: ``(name, value)`` keyword arguments bound to ``point_fn`` (hashable: models, scan
            sizes, ensembles).
        block: points evaluated together by ``vmap``.
        escalate: ``(name, value)`` keyword arguments of a second, more thorough pass.  Then
            ``point_fn`` returns ``(result, unfinished)`` and the few points whose flag is set
            (a search that needs more bisection rounds than the fast budget: under ``vmap`` every
            lane of a block waits for its slowest one) are recomputed with ``escalate`` in small
            compacted groups.  A point's result does not depend on its batch: this is the result
            of the thorough pass for every point, inside the one jitted program (direct calls and
            sweeps compute the same numbers), and it is differentiable (a static loop of
            ``lax.cond``).
        thorough: with ``escalate``, run only the thorough pass, on every point (a program
            about half the size, for small batches: see :data:`THOROUGH_ONLY`).
    Returns:
        a jitted function of the flat arrays; cached, one per kernel and static arguments.
    """
    kwargs = dict(static)
    if escalate is not None and thorough:
        kwargs.update(dict(escalate))

    def run(*args):
        n = jax.tree_util.tree_leaves(args)[0].shape[0]
        out = jax.lax.map(lambda a: point_fn(*a, **kwargs), args, batch_size=min(block, n))
        if escalate is None:
            return out
        if thorough:
            return out[0]
        out, flag = out
        full = dict(kwargs, **dict(escalate))
        k = min(RETRY, n)
        groups = -(-n // k)
        order = jnp.argsort(~flag, stable=True)
        order = jnp.concatenate([order, jnp.zeros((groups * k - n,), order.dtype)])
        count = jnp.sum(flag)

        def group(i, out):
            idx = jax.lax.dynamic_slice(order, (i * k,), (k,))
            valid = (i * k + jnp.arange(k)) < count

            def redo(out):
                sub = jax.tree_util.tree_map(lambda x: x[idx], args)
                res, _ = jax.vmap(lambda *a: point_fn(*a, **full))(*sub)

                def put(o, r):
                    mask = valid.reshape((k,) + (1,) * (r.ndim - 1))
                    return o.at[idx].set(jnp.where(mask, r, o[idx]))

                return jax.tree_util.tree_map(put, out, res)

            return jax.lax.cond(i * k < count, redo, lambda o: o, out)

        return jax.lax.fori_loop(0, groups, group, out)

    # the kernel's name in JAX's compile logs and profiles (JAX_LOG_COMPILES=1), not "run"
    name = getattr(point_fn, "__name__", None) or getattr(point_fn, "func", run).__name__
    name = f"batched_{name.lstrip('_')}" + ("_thorough" if escalate is not None and thorough
                                            else "")
    run.__name__ = run.__qualname__ = name
    return jax.jit(run)


@functools.lru_cache(maxsize=1)
def _pool() -> ThreadPoolExecutor | None:
    n = cpu_cores()
    return ThreadPoolExecutor(n, thread_name_prefix="jaxlmg") if n > 1 else None


def _spread(fn: Callable, args, n: int):
    """Run ``fn`` on fixed-size chunks of the 1-D ``args`` from one thread per core."""
    chunks = []
    for start in range(0, n, CHUNK):
        stop = min(start + CHUNK, n)

        part = jax.tree_util.tree_map(lambda x, start=start, stop=stop: x[start:stop], args)
        chunks.append((_pad(part, stop - start, CHUNK), stop - start))  # one compiled shape
    pool = _pool()
    if pool is None:
        outs = [fn(*c) for c, _ in chunks]
    else:
        outs = list(pool.map(lambda c: jax.block_until_ready(fn(*c[0])), chunks))
    return jax.tree_util.tree_map(
        lambda *xs: jnp.concatenate([x[:m] for x, (_, m) in zip(xs, chunks, strict=True)]),
        *outs)


def _pad(args, n: int, size: int):
    """Pad the 1-D leaves of ``args`` from ``n`` to ``size`` points with copies of the last one."""
    if size == n:
        return args
    return jax.tree_util.tree_map(
        lambda x: jnp.concatenate([x, jnp.broadcast_to(x[-1:], (size - n,))]), args)


def _on_cpu() -> bool:
    return jax.default_backend() == "cpu"


def batched(point_fn: Callable, args, *, static: tuple = (), dtype=None,
            escalate: tuple | None = None):
    """Evaluate the one-point kernel ``point_fn(*args, **dict(static))`` on broadcast ``args``.

    Args:
        point_fn: a pure function of scalar arguments (pytrees of scalars allowed) returning a
            pytree of scalars or of fixed-size arrays (e.g. one slot per state).
        args: tuple of the kernel's array arguments (pytrees allowed), NumPy-broadcastable.
        static: hashable ``(name, value)`` pairs passed as keyword arguments.
        dtype: floating dtype of the arguments (see :func:`broadcast_flat`).
        escalate: keyword arguments of a thorough second pass (see :func:`flat_kernel`).
    Returns:
        the kernel's pytree with leaves of the broadcast shape (followed by a leaf's own axes).
    """
    flat, shape = broadcast_flat(tuple(args), dtype)
    n = jax.tree_util.tree_leaves(flat)[0].shape[0]
    concrete = not any(is_traced(x) for x in jax.tree_util.tree_leaves(flat))
    kernel = flat_kernel(point_fn, static, BLOCK, escalate)
    if concrete and n > CHUNK and _on_cpu():
        out = _spread(kernel, flat, n)
    elif concrete and n <= CHUNK:
        size = next(b for b in BUCKETS if b >= n)
        if escalate is not None and size <= THOROUGH_ONLY:
            kernel = flat_kernel(point_fn, static, BLOCK, escalate, thorough=True)
        out = jax.tree_util.tree_map(lambda x: x[:n], kernel(*_pad(flat, n, size)))
    else:
        out = kernel(*flat)
    return jax.tree_util.tree_map(lambda x: x.reshape(shape + x.shape[1:]), out)
