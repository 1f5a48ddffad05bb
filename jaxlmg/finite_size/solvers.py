"""Host drivers of the solver stages: chunks over the cores, continuation in ``S``, windows.

* **Continuation in S** (:func:`solve_full`): level ``k`` of a block is a smooth function of
  ``S``, so the blocks on a coarse grid of ``S`` (every 64th sector, plus the small sectors) are
  solved from scratch and the others, in a dyadic refinement, start from an 8-point Lagrange
  prediction off the blocks already solved.  One Laguerre or Newton sweep then certifies and
  polishes each level; the few it does not accept go to the lane-local solver.
* **Energy windows** (:func:`solve_window`): only the levels below a cutoff, with certified
  bounds on the lowest level of every block (:func:`block_bounds`).
"""

from __future__ import annotations

import functools
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import jax
import numpy as np

from .._host import cpu_cores
from .blocks import Layout, block_of, layout, pack
from .checks import guard, window_bytes
from .hamiltonian import Problem, classical_minimum
from .kernel import bucket, count_chunk, make_chunk, observables_chunk
from .stages import local_chunk, refine_chunk, shared_chunk

__all__ = ["CHUNK", "solve_full", "solve_window", "block_bounds", "ground_level",
           "level_observables", "per_block"]

#: Coarse spacing (in sectors) of the blocks solved from scratch; the others are predicted.
_COARSE = 64
#: Largest lane chunk (lanes of one chunk stay in cache during a sweep).
CHUNK = 4096
#: Lanes per chunk of the lane-local solver: most lanes need 1-2 passes (first stage, chunks of
#: ``_LOCAL_CHUNK``, at most ``_LOCAL_FIRST`` passes); the few left (clusters of nearly
#: degenerate levels, bisected) finish in small chunks that iterate only for themselves.
_LOCAL_CHUNK = 1024
_LOCAL_FIRST = 3
_STRAGGLER_CHUNK = 64


#: Refinement steps with a stencil spacing up to this use Newton (p, p') instead of Laguerre.
_NEWTON_SPACING = 8


@functools.lru_cache(maxsize=1)
def _pool() -> ThreadPoolExecutor | None:
    """Worker threads for the chunks on CPU (one per core), ``None`` on accelerators.

    One XLA:CPU program runs on one core, and the kernels' row loops are serial, so independent
    chunks go to one thread per core (JAX releases the GIL while a program runs); on a GPU or TPU
    the host already dispatches asynchronously and the device is busy with one chunk at a time.
    """
    if jax.default_backend() != "cpu":
        return None
    cores = cpu_cores()
    return ThreadPoolExecutor(max_workers=cores) if cores > 1 else None


def _run_chunks(fn, prob: Problem, levels, L: int, columns, extra=()):
    """``fn(prob.coef, chunk, *column slices, *extra)`` for each chunk of ``L`` lanes of the flat
    ``levels``, spread over the cores (:func:`_map_chunks`; each chunk's table is built in its
    worker thread, next to the kernels).  ``columns``: ``(array over levels, fill)`` pairs, padded
    with their fill and cut like the levels.  Returns the list of per-chunk results (NumPy)."""
    n = np.size(levels)
    size = -(-n // L) * L
    padded = []
    for a, fill in columns:
        out = np.full(size, fill, np.asarray(a).dtype)
        out[:n] = a
        padded.append(out)

    def one(i):
        sl = slice(i, i + L)
        return fn(prob.coef, make_chunk(prob, levels[sl], L), *(a[sl] for a in padded), *extra)

    return _map_chunks(one, [(i,) for i in range(0, n, L)])


def _map_chunks(fn, calls):
    """``[fn(*args) for args in calls]``, the chunks spread over the cores (:func:`_pool`);
    results as NumPy (tuples of arrays stay tuples)."""

    def one(args):
        return jax.tree_util.tree_map(np.asarray, fn(*args))

    pool = _pool()
    if pool is None or len(calls) <= 1:
        return [one(a) for a in calls]
    return list(pool.map(one, calls))


class _Step(NamedTuple):
    """One refinement step: ``targets`` (``(nb,)`` blocks) predicted from ``sources``
    (``(nb, _STENCIL)`` blocks) with Lagrange ``weights`` (``(nb, _STENCIL)``) at spacing ``d``."""

    targets: np.ndarray
    sources: np.ndarray
    weights: np.ndarray
    d: int


class _Plan(NamedTuple):
    base_blocks: np.ndarray
    steps: tuple  # of _Step (per-block tables: O(blocks) memory, not O(levels))


def _stencil_weights(j, js):
    return np.array([np.prod([(j - b) / (a - b) for b in js if b != a]) for a in js])


#: Points of the Lagrange stencils that predict the levels of a block from solved blocks.
_STENCIL = 8


def _stencil(j: int, d: int, jmax: int) -> list[int] | None:
    """Sector offsets ``j'`` of the ``_STENCIL`` blocks that predict block ``j`` at spacing ``d``:
    ``j ± d, j ± 3d, ...``, shifted in steps of ``2d`` to stay at ``j' >= 0`` (near ``S = N/2``);
    ``None`` if that reaches beyond the last sector ``jmax``."""
    js = [j + (2 * i + 1) * d for i in range(-_STENCIL // 2, _STENCIL // 2)]
    while js[0] < 0:
        js = [x + 2 * d for x in js]
    return js if js[-1] <= jmax else None


def _need(j: int, d: int, jmax: int, per: int) -> float:
    """Fewest levels block ``j`` must have for its stencil (the farthest neighbour, ``S`` smaller
    by ``j' - j``, has about ``per·(j' - j)`` fewer levels, ``per = 1`` for parity blocks and 2 for
    whole sectors; level ``k`` is counted from the nearer end of the block): the block is solved
    from scratch below this."""
    js = _stencil(j, d, jmax)
    return np.inf if js is None else 2 * per * (js[-1] - j) + 8


@functools.lru_cache(maxsize=8)
def _plan(N: int, z2: bool) -> _Plan:
    """Which blocks are solved from scratch and how the others are predicted (host, per ``N``).

    Blocks whose sector offset ``j = N/2 - S`` is a multiple of ``_COARSE``, and the blocks too
    small for their stencil (:func:`_need`), are solved from scratch.  Then, for
    ``d = _COARSE/2, ..., 1``, the blocks with ``j ≡ d (mod 2d)`` are predicted level by level
    (level ``k`` counted from the bottom in the lower half of the block, from the top in the
    upper half) by ``_STENCIL``-point Lagrange interpolation in ``j`` from the same-parity blocks
    at ``j ± d, j ± 3d, j ± 5d, j ± 7d`` (shifted towards larger ``j`` near ``S = N/2``), all
    solved before.  (8 points instead of 4: ~10x fewer predictions fail the one-pass acceptance.)
    """
    lay = layout(N, z2)
    jb = (N - lay.two_S) // 2
    D = _COARSE
    # the level of refinement of each block: the spacing d of its stencil
    d_of = np.where(jb % D == 0, 0, np.gcd(jb, D))
    # a stencil of spacing d needs the neighbours to have the levels it interpolates
    jmax = int(jb.max())
    need = np.array([_need(int(j), int(d), jmax, 1 if z2 else 2) if d else 0
                     for j, d in zip(jb, d_of, strict=True)])
    base = (jb % D == 0) | (lay.dim < need)
    index = {(int(j), int(p)): b for b, (j, p) in enumerate(zip(jb, lay.parity, strict=True))}
    done = base.copy()
    steps = []
    d = D // 2
    while d >= 1:
        targets = np.flatnonzero(~done & (jb % (2 * d) == d))
        if targets.size:
            sources, weights = [], []
            for b in targets:
                j, P, n = int(jb[b]), int(lay.parity[b]), int(lay.dim[b])
                js = _stencil(j, d, jmax)
                blocks = [index[(jj, P)] for jj in js]
                assert all(done[bb] for bb in blocks), (N, j, d)
                # every level k has its partner (same k from the nearer end) in every source
                for bb in blocks:
                    ni = int(lay.dim[bb])
                    assert (n + 1) // 2 <= ni and (n + 1) // 2 + ni - n >= 0, (N, j, d, n, ni)
                sources.append(blocks)
                weights.append(_stencil_weights(j, js))
            steps.append(_Step(targets=targets, sources=np.array(sources, np.int64),
                               weights=np.array(weights), d=d))
            done[targets] = True
        d //= 2
    assert done.all()
    return _Plan(base_blocks=np.flatnonzero(base), steps=tuple(steps))


#: Sweeps of the shared multisection before its last lanes go to the lane-local solver.
_SHARED_PASSES = 12
_LOCAL_PASSES = 200


def _shared(prob: Problem, packs, lo_b=None, hi_b=None):
    """Run :func:`shared_chunk` on chunks of whole blocks; finish leftovers locally.

    ``packs``: list of flat level arrays, each the lowest levels of whole blocks (all of them
    unless ``hi_b`` is given).  ``lo_b``/``hi_b``: optional per-block points with no level below
    / exactly the packed number of levels below (default: the Weyl bounds ``prob.lo``/``hi``).
    Returns ``(levels, values, converged)`` (concatenated, NumPy).
    """
    L = max(CHUNK, bucket(max(p.size for p in packs)))

    def one(lv):
        ch = make_chunk(prob, lv, L)
        blk = block_of(prob.lay, lv)
        lx, hx = np.full(L, -np.inf), np.full(L, np.inf)
        if lo_b is not None:
            lx[: lv.size] = lo_b[blk]
        if hi_b is not None:
            hx[: lv.size] = hi_b[blk]
        tail = int(0.01 * lv.size)
        return shared_chunk(prob.coef, ch, lx, hx, _SHARED_PASSES, tail)

    results = _map_chunks(one, [(lv,) for lv in packs])
    levs, vals, oks, rest = [], [], [], []
    for lv, res in zip(packs, results, strict=True):
        val, done, x, LB, cLB, UB, cUB = (a[: lv.size] for a in res)
        left = ~done
        if left.any():
            rest.append((lv[left], x[left], LB[left], cLB[left], UB[left], cUB[left]))
        levs.append(lv[done])
        vals.append(val[done])
        oks.append(np.ones(int(done.sum()), bool))
    if rest:
        r = [np.concatenate(c) for c in zip(*rest, strict=True)]
        v, ok = _local(prob, *r)
        levs.append(r[0])
        vals.append(v)
        oks.append(ok)
    return np.concatenate(levs), np.concatenate(vals), np.concatenate(oks)


def _local(prob: Problem, lev, x0, lo, clo, hi, chi):
    """Finish lanes with :func:`local_chunk` (any levels, with start points and brackets).

    Two stages: all lanes for at most ``_LOCAL_FIRST`` passes in chunks of ``_LOCAL_CHUNK``,
    then the lanes left over in chunks of ``_STRAGGLER_CHUNK``, each iterating only until its
    own lanes have converged (a chunk costs its size times its slowest lane's passes).
    Returns ``(values, converged)`` in the order of ``lev``.
    """
    order = np.argsort(lev, kind="stable")
    state = [a[order] for a in (lev, x0, lo, clo, hi, chi)]
    vals = np.full(lev.size, np.nan)
    oks = np.zeros(lev.size, bool)
    todo = np.arange(lev.size)
    for L, passes in ((_LOCAL_CHUNK, _LOCAL_FIRST), (_STRAGGLER_CHUNK, _LOCAL_PASSES)):
        lv, x0_, lo_, clo_, hi_, chi_ = (a[todo] for a in state)

        results = _run_chunks(local_chunk, prob, lv, L, ((x0_, 0.0), (lo_, -1.0), (clo_, 0),
                                                         (hi_, 1.0), (chi_, 1)), (passes,))
        res = [np.concatenate([r[j] for r in results])[: lv.size] for j in range(7)]
        vals[todo], oks[todo] = res[0], res[1]
        for a, new in zip(state[1:], res[2:], strict=True):
            a[todo] = new
        todo = todo[~res[1]]
        if not todo.size:
            break
    inv = np.empty_like(order)
    inv[order] = np.arange(order.size)
    return vals[inv], oks[inv]


class _Targets(NamedTuple):
    """The flat levels of a step's target blocks, with what predicting them needs (NumPy)."""

    lev: np.ndarray  # (n,) flat level index
    k: np.ndarray  # (n,) level index inside the block
    seg: np.ndarray  # (n,) segment: 2 * (target row) + (upper half)
    base: np.ndarray  # (2 * n_targets, _STENCIL) flat index of source level k = base + k


def _targets(lay: Layout, step: _Step) -> _Targets:
    """Level ``k`` of a target block is predicted (:func:`_predict`) from level ``k`` of each
    source block, counted from the nearer end: each target block is two segments, its lower half
    (source level ``k``) and its upper half (source level ``k + n_src - n``)."""
    n = lay.dim[step.targets]
    k = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)
    seg = np.repeat(np.arange(2 * n.size), np.stack([(n + 1) // 2, n // 2], axis=1).ravel())
    src = step.sources
    base = np.stack([lay.start[src], lay.start[src] + lay.dim[src] - n[:, None]], axis=1)
    return _Targets(lev=np.repeat(lay.start[step.targets], n) + k, k=k, seg=seg,
                    base=base.reshape(2 * n.size, -1))


def _predict(step: _Step, tg: _Targets, levels):
    """Lagrange predictions of the target levels ``tg.lev`` from the solved ``levels``."""
    vals = levels[tg.base[tg.seg] + tg.k[:, None]]
    return np.einsum("ij,ij->i", step.weights[tg.seg // 2], vals)


def solve_full(prob: Problem):
    """All levels of all blocks at one parameter point: ``(levels, converged)``, flat NumPy."""
    lay = prob.lay
    plan = _plan(lay.N, lay.z2)
    L = CHUNK
    levels = np.full(lay.n_levels, np.nan)
    conv = np.zeros(lay.n_levels, bool)
    Lb = max(L, bucket(int(lay.dim.max())))
    packs = pack(lay, plan.base_blocks, lay.dim[plan.base_blocks], Lb)
    lv, v, ok = _shared(prob, packs)
    levels[lv], conv[lv] = v, ok
    for step in plan.steps:
        mode = "newton" if step.d <= _NEWTON_SPACING else "laguerre"
        tg = _targets(lay, step)
        lev = tg.lev
        results = _run_chunks(functools.partial(refine_chunk, mode=mode), prob, lev, L,
                              ((_predict(step, tg, levels), 0.0),))
        res = [np.concatenate([r[j] for r in results])[: lev.size] for j in range(7)]
        val, good = res[0], res[1]
        levels[lev[good]], conv[lev[good]] = val[good], True
        miss = ~good
        if miss.any():
            v2, ok2 = _local(prob, lev[miss], *(r[miss] for r in res[2:]))
            levels[lev[miss]], conv[lev[miss]] = v2, ok2
    return levels, conv


def per_block(prob: Problem, fn, x_of_block):
    """A one-lane-per-block chunk function at ``x_of_block`` (on lane ``k = 0`` of each block)."""
    lev0 = prob.lay.start
    res = _run_chunks(fn, prob, lev0, CHUNK, ((x_of_block, 0.0),))
    return np.concatenate(res)[: lev0.size]


def block_bounds(prob: Problem):
    """Certified bounds ``lb < λ_0(b) < ub`` on the lowest level of every block (NumPy).

    Trial points around the classical minimum of each block's sector
    (:func:`.hamiltonian.classical_minimum`), with a margin for the zero-point energy: ``lb`` is
    certified by a Sturm count of 0, ``ub`` by a count of at least 1; blocks that fail retry
    with a 4x larger margin (``lb`` falls back to the Weyl bound, ``ub`` to the top of the block).
    """
    e_cl = classical_minimum(prob)
    weyl, top, scale = prob.lo, prob.hi, prob.scale
    out = []
    for sign, fallback in ((-1.0, weyl), (1.0, top)):
        margin = 2.0 * prob.zero_point + 1e-9 * scale
        res = np.full(weyl.size, np.nan)
        todo = np.ones(weyl.size, bool)
        for _ in range(6):
            trial = np.clip(e_cl + sign * margin, weyl, top)
            cnt = per_block(prob, count_chunk, trial)
            ok = todo & ((cnt == 0) if sign < 0 else (cnt >= 1))
            res[ok] = trial[ok]
            todo &= ~ok
            if not todo.any():
                break
            margin = 4.0 * margin
        res[todo] = fallback[todo]
        out.append(res)
    return out[0], out[1]


def solve_window(prob: Problem, e_cut: float, lb=None, max_bytes=None):
    """The levels below ``e_cut`` (total energy) of every block: ``(levels, values, converged)``;
    ``lb``: certified lower bounds of the blocks (:func:`block_bounds`, computed if absent)."""
    lay = prob.lay
    counts = per_block(prob, count_chunk, np.full(lay.dim.size, e_cut))
    guard(lay.N, window_bytes(lay, int(counts.sum())), max_bytes, "the levels below the window")
    blocks = np.flatnonzero(counts > 0)
    if not blocks.size:
        return np.zeros(0, np.int64), np.zeros(0), np.zeros(0, bool)
    if lb is None:
        lb = block_bounds(prob)[0]
    L = max(CHUNK, bucket(int(counts.max())))
    packs = pack(lay, blocks, counts[blocks], L)
    lv, v, ok = _shared(prob, packs, lo_b=lb, hi_b=np.full(lay.dim.size, e_cut))
    order = np.argsort(lv, kind="stable")
    return lv[order], v[order], ok[order]


def ground_level(prob: Problem, lb, ub) -> float:
    """The lowest level of ``H``: the lowest level of every block that can hold it (certified
    bounds ``lb < λ_0 < ub`` from :func:`block_bounds`: ``lb <= min(ub)``)."""
    blocks = np.flatnonzero(lb <= ub.min())
    _, v, _ = _shared(prob, [prob.lay.start[blocks]])
    return float(v.min())


def level_observables(prob: Problem, lev, vals):
    """``(⟨m²⟩, ⟨m⁴⟩, ⟨m⟩)`` of the given levels (flat level indices ``lev``, values ``vals``);
    ``⟨m⟩ = 0`` exactly in a parity block (a Z₂-symmetric model)."""
    order = np.argsort(lev, kind="stable")
    lev_s, val_s = lev[order], vals[order]
    outs = _run_chunks(observables_chunk, prob, lev_s, CHUNK, ((val_s, 0.0),))
    inv = np.empty_like(order)
    inv[order] = np.arange(order.size)
    m2, m4, m1 = ((np.concatenate([o[j] for o in outs])[: lev.size] if outs else np.zeros(0))[inv]
                  for j in range(3))
    return m2, m4, (np.zeros_like(m1) if prob.lay.z2 else m1)
