"""Exact finite-N spectrum and thermodynamics of collective-spin models (eqs. 1, 4-10).

A :class:`~jaxlmg.models.CollectiveSpinModel`, ``H = N u(2Sᶻ/N) - 2h Sˣ`` (the extended LMG model
of eq. 4: ``u = -J Mz² - K Mz⁴``; also ``PSpin(p)``, ``LongitudinalLMG4`` or your own), commutes
with the total spin ``S²`` (eq. 5).  Every sector ``S`` (``S = N/2, N/2 - 1, ... >= 0``;
half-integers for odd ``N``) appears ``g(S) = C(N, N/2-S) - C(N, N/2-S-1)`` times (eq. 6), and
``H`` restricted to it is a real symmetric tridiagonal matrix in the ``Sᶻ = m`` basis,

    ``⟨m|H|m⟩ = N u(2m/N)``,   ``⟨m+1|H|m⟩ = -h sqrt(S(S+1) - m(m+1))``

(``-(4J/N) m² - (16K/N³) m⁴`` on the diagonal for LMG4).  For a Z₂-symmetric model the
reflection ``m → -m`` commutes with it, so each sector splits into two parity *blocks* (basis
``(|m⟩ ± |-m⟩)/√2``) of dimension ``≈ S + 1``; otherwise (odd ``p``, a longitudinal field) each
sector is one block of dimension ``2S + 1``.  The partition function (eq. 9) and the density of
states (eq. 10) are sums over the levels of all blocks, each level weighted by ``g(S)``.  All
weights are handled as ``ln g(S)`` (``g`` overflows float64 for ``N`` of a few thousand).
:func:`spectrum`, :func:`free_energy` and :func:`entropy` are the LMG4 forms of
:func:`spectrum_state`, :func:`free_energy_state` and :func:`entropy_state`.

Eigenvalue algorithm (all levels of all blocks: ``O(N³/12)`` row operations per pass over the
spectrum, vectorized over levels; no dense matrices, no eigenvectors):

* **One kernel** (:func:`.kernel.evaluate`): for a chunk of ``L`` *lanes* (a block and a trial
  energy ``x`` each), the three-term recurrence of the characteristic polynomial
  ``p(x) = det(T - x)`` over the rows of the block, with ``p'`` and ``p''`` (or ``p'`` only),
  divided by its largest entry every 8 rows (no divisions in the rows).  It gives the Sturm
  count (levels below ``x``: sign changes of ``p``), ``G = p'/p = Σ 1/(x - λ)`` and
  ``H = Σ 1/(x - λ)²``.  All device work is on chunks of fixed size (one compilation per
  kernel); the host dispatches chunks asynchronously.
* **Laguerre's method with Sturm safeguards.**  For a polynomial with real roots, Laguerre's two
  points from ``x`` lie between ``x`` and the neighbouring roots and converge to them
  cubically and monotonically; the count says which root a lane is converging to, and, with the
  sign of ``G``, certifies it.
* **Multisection from scratch** (:func:`.stages.shared_chunk`): lanes start on a grid of the block's
  spectral interval; after each sweep every point of known count (evaluated points and their
  Laguerre points) is shared among the lanes of its block, so each lane gets the tightest bracket
  known, then continues Laguerre, bisects, or moves to its rank in a bracket with several
  levels.  The few lanes left after ~10 sweeps finish in compact batches of their own
  (:func:`.stages.local_chunk`).
* **Continuation in S** (:func:`.solvers.solve_full`): level ``k`` of a block is a smooth
  function of ``S``, so the blocks on a coarse grid of ``S`` (every 64th sector, plus the
  small sectors) are solved from scratch and the others, in a dyadic refinement, start from an
  8-point Lagrange prediction off the blocks already solved (error far below the level spacing
  away from separatrices).  One Laguerre (coarse steps) or Newton (spacing <= 4 sectors, 94% of
  the levels) sweep then certifies and polishes each level (:func:`.stages.refine_chunk`); the
  ~0.5% it does not accept go to the lane-local solver with brackets from their accepted
  neighbours.  Net cost: about 1.1 sweeps over the whole spectrum, most of them the cheaper
  Newton sweep.
* **Energy windows** (:func:`.solvers.solve_window`): only the levels below a cutoff, e.g. for low
  temperatures, where a rigorous bound (from certified bounds on the lowest level of every
  block, :func:`.solvers.block_bounds`) shows that the rest weighs less than ``e^-40`` of
  ``Z``.  This makes ``N = 10^4 - 2·10^4`` cheap at low ``T``.

Thermal averages of ``(Sᶻ)²``, ``(Sᶻ)⁴`` and ``Sᶻ`` use the per-level expectation values
``⟨m^j⟩ = ∂λ/∂t`` for the perturbations ``+t m^j`` of the diagonal (Hellmann-Feynman), obtained
exactly from derivative recurrences at the converged levels: no eigenvectors are needed.

Public functions take concrete (not traced) arguments: the integer ``N`` fixes every shape and the
host drives the iterations (their number is data dependent); the kernels are jitted on
fixed-size chunks and a diagonal table of fixed length, so calls with any ``N`` and any model
(up to ``N ≈ 8000``, where a block outgrows a chunk; ``N ≈ 4000`` without Z₂ symmetry) reuse the
same compiled code.  Results are JAX arrays (float64).

Layout of the package (bottom up): :mod:`.checks` (input checks, memory estimates),
:mod:`.blocks` (sectors, degeneracies, parity blocks), :mod:`.kernel` (the recurrence, Sturm
counts, Laguerre points), :mod:`.hamiltonian` (a model's diagonal and block bounds at one point),
:mod:`.stages` (multisection, lane-local and refinement solvers on one
chunk), :mod:`.solvers` (host drivers: continuation in ``S``, energy windows), :mod:`.levels`
(:func:`spectrum_state`), :mod:`.thermo` (:func:`free_energy_state`, :func:`entropy_state`),
:mod:`.scaling`
(:func:`extrapolate`, :func:`mean_field_comparison`).
"""

from .blocks import Sectors as Sectors
from .blocks import degeneracy as degeneracy
from .blocks import sectors as sectors
from .checks import MAX_BYTES as MAX_BYTES
from .checks import estimate_bytes as estimate_bytes
from .levels import Spectrum as Spectrum
from .levels import spectrum as spectrum
from .levels import spectrum_state as spectrum_state
from .scaling import Extrapolation as Extrapolation
from .scaling import MeanFieldComparison as MeanFieldComparison
from .scaling import extrapolate as extrapolate
from .scaling import mean_field_comparison as mean_field_comparison
from .thermo import DensityOfStates as DensityOfStates
from .thermo import FiniteSizeThermo as FiniteSizeThermo
from .thermo import entropy as entropy
from .thermo import entropy_state as entropy_state
from .thermo import free_energy as free_energy
from .thermo import free_energy_state as free_energy_state

__all__ = [
    "Sectors",
    "Spectrum",
    "FiniteSizeThermo",
    "DensityOfStates",
    "Extrapolation",
    "MeanFieldComparison",
    "sectors",
    "degeneracy",
    "spectrum",
    "spectrum_state",
    "free_energy",
    "free_energy_state",
    "entropy",
    "entropy_state",
    "extrapolate",
    "mean_field_comparison",
    "estimate_bytes",
]
