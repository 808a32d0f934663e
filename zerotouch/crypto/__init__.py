"""Recipes over `cryptography`; the only package that imports its hazmat layer."""
