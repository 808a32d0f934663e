"""Whole-file reads and writes through plain descriptors, for the keystore and the settings.

A simulator runs thousands of devices next to the server; Python's file objects cost more than
the system calls they make.
"""

from __future__ import annotations

import os

PRIVATE = 0o600
PUBLIC = 0o644


def write_whole(path: str, data: bytes, *, private: bool, sync: bool) -> None:
    """``data`` into a temporary file beside ``path``, then renamed over it."""
    folder, name = os.path.split(path)
    tmp = os.path.join(folder, f".{name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE if private else PUBLIC)
    try:
        if private:  # A temporary file left behind by a crash keeps the mode it was made with.
            os.fchmod(fd, PRIVATE)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def read_whole(path: str) -> bytes | None:
    """The file's bytes, or None when there is no such file."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)
