"""jaxlmg: canonical and microcanonical phase diagrams of fully connected quantum spin models.

The built-in model is the Lipkin-Meshkov-Glick ferromagnet with a 4-spin term of Defenu, Mukamel
and Ruffo, PRL 133, 050403 (2024).  Importing jaxlmg turns on float64 in JAX (tricritical physics
needs it); pass ``precision="float32"`` where offered to trade accuracy for speed.
"""

import jax as _jax

_jax.config.update("jax_enable_x64", True)

from ._canonical import CanonicalState as CanonicalState  # noqa: E402
from ._canonical import GroundState as GroundState  # noqa: E402
from ._canonical import canonical as canonical  # noqa: E402
from ._canonical import canonical_state as canonical_state  # noqa: E402
from ._canonical import ground_state as ground_state  # noqa: E402
from ._model import LMG4 as LMG4  # noqa: E402
from ._model import CollectiveSpinModel as CollectiveSpinModel  # noqa: E402
from ._model import LMGCouplings as LMGCouplings  # noqa: E402
from ._model import energy as energy  # noqa: E402
from ._model import entropy as entropy  # noqa: E402
from ._model import free_energy as free_energy  # noqa: E402
from ._status import Status as Status  # noqa: E402
from ._version import __version__ as __version__  # noqa: E402
