"""The device's keystore: a directory with one folder per secTag.

Layout: ``<root>/<secTag>/private.pem`` (the key, mode 0600, never sent anywhere),
``public.pem``, ``client.pem`` (client certificate), ``ca.pem`` (the server CA to
trust), ``psk.json`` (0600); ``<root>/config.json`` holds the configuration. Every file is
written whole (a temporary file renamed into place), so a crash leaves the old or the new one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

PRIVATE = 0o600
PUBLIC = 0o644


class Keystore:
    def __init__(self, root: Path, *, durable: bool = True) -> None:
        """``durable`` syncs every file to disk before it replaces the old one (a device that
        loses power keeps its keys); simulated devices turn it off."""
        self.root = root
        self.durable = durable
        # Folders as text: a simulator writes thousands of keystores next to the server, and
        # Path objects cost more than the system calls they make.
        self._root = os.fspath(root)
        self._made: set[str] = set()

    def path(self, sec_tag: int, name: str) -> Path:
        return self.root / str(sec_tag) / name

    def write(self, sec_tag: int | None, name: str, text: str, *, private: bool = False) -> None:
        folder = self._root if sec_tag is None else os.path.join(self._root, str(sec_tag))
        if folder not in self._made:
            os.makedirs(folder, mode=0o700, exist_ok=True)
            self._made.add(folder)
        tmp = os.path.join(folder, f".{name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE if private else PUBLIC)
        with os.fdopen(fd, "w") as out:
            out.write(text)
            if self.durable:
                out.flush()
                os.fsync(out.fileno())
        os.replace(tmp, os.path.join(folder, name))

    def read(self, sec_tag: int, name: str) -> str | None:
        try:
            with open(os.path.join(self._root, str(sec_tag), name)) as file:
                return file.read()
        except FileNotFoundError:
            return None

    def config(self) -> dict[str, Any]:
        try:
            with open(os.path.join(self._root, "config.json")) as file:
                value: dict[str, Any] = json.load(file)
            return value
        except FileNotFoundError:
            return {}

    def merge_config(self, values: dict[str, Any]) -> None:
        self.write(None, "config.json", json.dumps({**self.config(), **values}, indent=2))
