"""Factory files cut into chunks of whole records: any cut reads as the whole file does (row
numbers, quoted cells over several lines, blank lines, bad rows), and garbage is a clean error."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zerotouch.domain.errors import InvalidArgument
from zerotouch.protocols import factory_rows

PEM = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYI\nKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----"

cell = st.one_of(
    st.text(alphabet='abc,;" \n', max_size=8),
    st.just(PEM),
    st.just(""),
)


def _csv_text(rows: list[list[str]], blank_every: int) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["deviceId", "publicKey", "serial"])
    for i, row in enumerate(rows):
        writer.writerow(row)
        if blank_every and i % blank_every == 0:
            out.write("\n")
    return out.getvalue()


def _read(text: str, fmt: str, size: int) -> list[tuple[int, Any]]:
    lines = factory_rows.lines_of([text.encode()[i : i + 7] for i in range(0, len(text), 7)])
    found = []
    for chunk in factory_rows.chunks(lines, fmt, size=size):
        for number, row in factory_rows.rows_of(chunk):
            found.append((number, row if isinstance(row, dict) else ("error", row.message)))
    return found


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.lists(cell, min_size=3, max_size=3), max_size=12),
    st.integers(min_value=0, max_value=3),
    st.integers(min_value=1, max_value=5),
)
def test_any_cut_reads_as_the_whole_file(rows: list[list[str]], blank: int, size: int) -> None:
    text = _csv_text(rows, blank)
    whole = _read(text, "csv", 10**6)
    assert _read(text, "csv", size) == whole
    assert [n for n, _ in whole] == list(range(1, len(whole) + 1))
    # Each record comes back with its cells, the PEM key's line breaks included.
    assert len(whole) == len(rows)  # Blank lines are no rows; a row of empty cells is one.
    for (_, read), written in zip(whole, rows, strict=True):
        assert isinstance(read, dict)
        expected = dict(zip(["deviceId", "publicKey", "serial"], written, strict=True))
        assert read == {k: v for k, v in expected.items() if v != ""}


def test_json_lines_and_bad_rows_keep_their_numbers() -> None:
    text = '{"deviceId": "a"}\n\n{not json\n[1]\n{"deviceId": "b"}\n'
    rows = _read(text, "jsonl", 2)
    assert [n for n, _ in rows] == [1, 2, 3, 4]
    assert rows[0][1] == {"deviceId": "a"} and rows[3][1] == {"deviceId": "b"}
    assert "not JSON" in rows[1][1][1] and "object" in rows[2][1][1]


def test_export_columns_and_separators() -> None:
    text = "DevEUI;AppEUI;AppKey;Name\n0004A30B001C0530;70B3D57ED0000000;AB;x\n"
    (row,) = _read(text, "csv", 10)
    assert row == (1, {"devEui": "0004A30B001C0530", "joinEui": "70B3D57ED0000000", "appKey": "AB"})
    for header, reason in (("deviceId,colour\n", "unknown column"), ("serial\n", "needs a")):
        with pytest.raises(InvalidArgument, match=reason):
            _read(header, "csv", 10)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), st.sampled_from(["csv", "jsonl"]))
def test_garbage_is_a_clean_error(data: bytes, fmt: str) -> None:
    try:
        chunks = factory_rows.chunks(factory_rows.lines_of([data]), fmt, columns=["deviceId"])
        for chunk in chunks:
            for _, row in factory_rows.rows_of(chunk):
                assert isinstance(row, dict | InvalidArgument)
    except InvalidArgument:
        pass
