"""The OVMS v2 auto-provisioning front-end (TCP, optionally TLS)."""
