"""jaxlmg: canonical and microcanonical phase diagrams of fully connected quantum spin models.

The built-in model is the Lipkin-Meshkov-Glick ferromagnet with a 4-spin term of Defenu, Mukamel
and Ruffo, PRL 133, 050403 (2024).  Importing jaxlmg turns on float64 in JAX (tricritical physics
needs it); pass ``precision="float32"`` where offered to trade accuracy for speed.
"""

import jax as _jax

_jax.config.update("jax_enable_x64", True)

from . import finite_size as finite_size  # noqa: E402
from ._canonical import CanonicalState as CanonicalState  # noqa: E402
from ._canonical import GroundState as GroundState  # noqa: E402
from ._canonical import canonical as canonical  # noqa: E402
from ._canonical import canonical_state as canonical_state  # noqa: E402
from ._canonical import ground_state as ground_state  # noqa: E402
from ._coexistence import coexistence_state as coexistence_state  # noqa: E402
from ._coexistence import first_order_field_state as first_order_field_state  # noqa: E402
from ._critical import CriticalField as CriticalField  # noqa: E402
from ._critical import critical_field_state as critical_field_state  # noqa: E402
from ._critical import landau_coefficients_state as landau_coefficients_state  # noqa: E402
from ._critical import tricritical_state as tricritical_state  # noqa: E402
from ._inequivalence import Agreement as Agreement  # noqa: E402
from ._inequivalence import EnsembleAgreement as EnsembleAgreement  # noqa: E402
from ._inequivalence import EntropyCurve as EntropyCurve  # noqa: E402
from ._inequivalence import ensemble_agreement as ensemble_agreement  # noqa: E402
from ._inequivalence import ensemble_agreement_state as ensemble_agreement_state  # noqa: E402
from ._inequivalence import entropy_curve as entropy_curve  # noqa: E402
from ._inequivalence import entropy_curve_state as entropy_curve_state  # noqa: E402
from ._jump_boundaries import BoundaryCurve as BoundaryCurve  # noqa: E402
from ._jump_boundaries import (  # noqa: E402
    microcanonical_jump_boundaries as microcanonical_jump_boundaries,
)
from ._jump_boundaries import (  # noqa: E402
    microcanonical_jump_boundaries_state as microcanonical_jump_boundaries_state,
)
from ._microcanonical import EnergyRange as EnergyRange  # noqa: E402
from ._microcanonical import MicrocanonicalState as MicrocanonicalState  # noqa: E402
from ._microcanonical import energy_range as energy_range  # noqa: E402
from ._microcanonical import energy_range_state as energy_range_state  # noqa: E402
from ._microcanonical import microcanonical as microcanonical  # noqa: E402
from ._microcanonical import microcanonical_state as microcanonical_state  # noqa: E402
from ._microcanonical_transitions import (  # noqa: E402
    MicrocanonicalTransition as MicrocanonicalTransition,
)
from ._microcanonical_transitions import TemperatureSolutions as TemperatureSolutions  # noqa: E402
from ._microcanonical_transitions import (  # noqa: E402
    microcanonical_at_temperature as microcanonical_at_temperature,
)
from ._microcanonical_transitions import (  # noqa: E402
    microcanonical_at_temperature_state as microcanonical_at_temperature_state,
)
from ._microcanonical_transitions import (  # noqa: E402
    microcanonical_first_order as microcanonical_first_order,
)
from ._microcanonical_transitions import (  # noqa: E402
    microcanonical_first_order_state as microcanonical_first_order_state,
)
from ._model import energy as energy  # noqa: E402
from ._model import entropy as entropy  # noqa: E402
from ._model import free_energy as free_energy  # noqa: E402
from ._phase_diagram import PhaseDiagram as PhaseDiagram  # noqa: E402
from ._phase_diagram import phase_diagram as phase_diagram  # noqa: E402
from ._phase_diagram import phase_diagram_state as phase_diagram_state  # noqa: E402
from ._status import Status as Status  # noqa: E402
from ._transitions import Coexistence as Coexistence  # noqa: E402
from ._transitions import LandauCoefficients as LandauCoefficients  # noqa: E402
from ._transitions import Tricritical as Tricritical  # noqa: E402
from ._transitions import coexistence as coexistence  # noqa: E402
from ._transitions import critical_field as critical_field  # noqa: E402
from ._transitions import first_order_field as first_order_field  # noqa: E402
from ._transitions import landau_coefficients as landau_coefficients  # noqa: E402
from ._transitions import tricritical as tricritical  # noqa: E402
from ._version import __version__ as __version__  # noqa: E402
from .models import LMG4 as LMG4  # noqa: E402
from .models import CollectiveSpinModel as CollectiveSpinModel  # noqa: E402
from .models import LMGCouplings as LMGCouplings  # noqa: E402
from .models import LongitudinalCouplings as LongitudinalCouplings  # noqa: E402
from .models import LongitudinalLMG4 as LongitudinalLMG4  # noqa: E402
from .models import PSpin as PSpin  # noqa: E402
from .models import PSpinCouplings as PSpinCouplings  # noqa: E402
