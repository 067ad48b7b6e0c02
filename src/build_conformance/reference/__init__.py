"""The reference server: the conformance suite's default target, conformant unless faults are switched on.

Standard library only (http.server + sqlite3). It never imports the suite, and the suite imports
it only through the launcher that starts it as the embedded target.
"""

from .auth import Tenant
from .faults import FAULTS, Fault
from .server import ReferenceServer, start_reference_server

__all__ = ["FAULTS", "Fault", "ReferenceServer", "Tenant", "start_reference_server"]
