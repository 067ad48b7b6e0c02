"""The reference server: the conformance suite's default target, conformant unless faults are switched on.

Standard library only (http.server + sqlite3). It never imports the suite, and the suite imports
it only through the launcher that starts it as the embedded target.
"""

from .auth import Tenant
from .faults import FAULTS, Fault
from .server import ReferenceServer, ServerOptions, start_reference_server
from .variations import VARIATIONS, Variation

__all__ = [
    "FAULTS", "VARIATIONS", "Fault", "ReferenceServer", "ServerOptions", "Tenant", "Variation",
    "start_reference_server",
]
