"""fairderm: audit dermatology AI for fairness across skin tones.

The package is organised by concern, and data flows one way::

    cohort -> tone -> inference -> metrics -> gate -> cards
                                   moe (mitigation)   audit (orchestration)

Each subpackage's ``__init__`` names its public API.
"""

from __future__ import annotations

from fairderm._version import __version__
from fairderm.errors import FairdermError, InputError

__all__ = ["FairdermError", "InputError", "__version__"]
