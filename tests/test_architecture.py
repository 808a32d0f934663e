"""The layers of docs/architecture.md, as the import graph shows them.

domain, crypto and protocols import none of the upper floors; services never build SQL (the
statements are in store/, one module per aggregate); adapters reach the database only through
services and never import each other; only the serving root (and the command line that starts
it) puts them together. No module grows past 400 lines.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "zerotouch"
MAX_LINES = 400


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "migrations" not in p.parts)


def _name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports (at any depth of its code), absolute."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            base = node.module
            if node.level:
                package = _name(path).split(".")
                if path.name != "__init__.py":
                    package = package[:-1]
                base = ".".join([*package[: len(package) - node.level + 1], node.module])
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def _under(name: str, *prefixes: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _offenders(layer: str, *forbidden: str) -> dict[str, list[str]]:
    bad = {}
    for path in _modules():
        if not _under(_name(path), layer):
            continue
        hits = sorted(i for i in _imports(path) if _under(i, *forbidden))
        if hits:
            bad[_name(path)] = hits
    return bad


def test_the_import_reader_sees_imports() -> None:
    """The checks below read what they claim to read."""
    assert "sqlalchemy" in _imports(PACKAGE / "store" / "db.py")
    assert "zerotouch.services.batching" in _imports(PACKAGE / "services" / "core.py")
    assert _under("zerotouch.store.devices", "zerotouch.store")
    assert not _under("zerotouch.storefront", "zerotouch.store")


def test_no_service_imports_sqlalchemy() -> None:
    assert _offenders("zerotouch.services", "sqlalchemy") == {}


def test_adapters_reach_the_database_only_through_services() -> None:
    assert _offenders("zerotouch.adapters", "sqlalchemy", "zerotouch.store") == {}


def test_adapters_do_not_import_each_other_or_the_serving_root() -> None:
    assert _offenders("zerotouch.adapters.http", "zerotouch.adapters.ovms") == {}
    assert _offenders("zerotouch.adapters.ovms", "zerotouch.adapters.http") == {}
    assert _offenders("zerotouch.adapters", "zerotouch.serving", "zerotouch.cli") == {}


def test_services_know_no_front_end() -> None:
    upper = ("zerotouch.adapters", "zerotouch.serving", "zerotouch.cli", "fastapi", "starlette")
    assert _offenders("zerotouch.services", *upper) == {}
    assert _offenders("zerotouch.store", "zerotouch.services", *upper) == {}


@pytest.mark.parametrize("layer", ["zerotouch.domain", "zerotouch.crypto", "zerotouch.protocols"])
def test_the_ground_floors_import_nothing_above_them(layer: str) -> None:
    upper = ("zerotouch.services", "zerotouch.store", "zerotouch.adapters", "zerotouch.serving")
    assert _offenders(layer, *upper, "sqlalchemy") == {}


def test_no_module_is_over_400_lines() -> None:
    long = {_name(p): n for p in _modules() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_the_device_route_shells_stay_thin() -> None:
    routes = PACKAGE / "adapters" / "http" / "routes"
    assert len((routes / "device_api.py").read_text().splitlines()) <= 120


def test_the_readme_stays_short() -> None:
    readme = PACKAGE.parent / "README.md"
    assert len(readme.read_text().splitlines()) < 400
