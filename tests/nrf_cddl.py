"""Nordic's nrf_provisioning CDDL (tests/vectors/nrf), checked with zcbor."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cbor2

VECTORS = Path(__file__).parent / "vectors" / "nrf"


def _schema() -> Any:
    # zcbor 0.9.1 imports a name cbor2 6 renamed; it is the same error kind under the new name.
    if not hasattr(cbor2, "CBORDecodeValueError"):
        cbor2.CBORDecodeValueError = cbor2.CBORDecodeError  # type: ignore[attr-defined]
    from zcbor.zcbor.zcbor import DataTranslator

    return DataTranslator.from_cddl((VECTORS / "nrf_provisioning_cbor.cddl").read_text(), 10)


SCHEMA = _schema()


def valid(kind: str, raw: bytes) -> None:
    """Raises unless ``raw`` is a ``kind`` ("commands", "responses") the CDDL allows."""
    SCHEMA.my_types[kind].validate_str(raw)
