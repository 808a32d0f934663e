"""The HTTP front-end: operator API (and later the device and OCPI APIs)."""
