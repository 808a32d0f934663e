"""zerotouch: self-hosted zero-touch provisioning for connected devices."""

__version__ = "0.13.0"
