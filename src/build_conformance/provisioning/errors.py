"""What goes wrong when provisioning: the suite could not judge (`error`), or cannot at all here (`not-run`)."""

from __future__ import annotations


class ProvisioningError(Exception):
    """The provisioner could not do what was asked; the requirement needing it cannot be judged."""


class CapabilityMissing(ProvisioningError):
    """The deployment's provisioner cannot do this at all (e.g. no advance hook): `not-run`, not `error`."""
