"""The device-side agent: ESF-style settings, a keystore, and the Device API client."""
