"""Entities, value objects, lifecycle tables and error kinds. No frameworks live here."""
