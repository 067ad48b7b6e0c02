"""Builds in a chosen status, and observations of them: the provisioner protocol and its implementations.

A platform's own provisioner (`--provisioner module:factory`) needs only the names exported here.
"""

from build_conformance.provisioning.protocol import (
    BUILD_STATUSES,
    TERMINAL,
    CapabilityMissing,
    ProvisionedBuild,
    Provisioner,
    ProvisionerContext,
    ProvisioningError,
    Snapshot,
)

__all__ = [
    "BUILD_STATUSES",
    "TERMINAL",
    "CapabilityMissing",
    "ProvisionedBuild",
    "Provisioner",
    "ProvisionerContext",
    "ProvisioningError",
    "Snapshot",
]
