"""The binary COPY payload built column by column is byte for byte the one built row by row."""

from __future__ import annotations

import struct

import numpy as np

from agentbus.store import _pgcopy


def _row_by_row(rows: list[list[bytes | None]]) -> bytes:
    """The format as PostgreSQL documents it, one field at a time: the reference."""
    out = [_pgcopy.HEADER]
    for row in rows:
        out.append(struct.pack(">h", len(row)))
        for field in row:
            out.append(struct.pack(">i", -1) if field is None else struct.pack(">i", len(field)) + field)
    out.append(_pgcopy.TRAILER)
    return b"".join(out)


def test_columns_make_the_stream_that_rows_make() -> None:
    rng = np.random.default_rng(3)
    n = 50
    vectors = rng.standard_normal((n, 6)).astype(np.float32)
    codes = rng.integers(0, 256, (n, 10), dtype=np.uint8)
    ids = [f"id-{i}-é".encode() for i in range(n)]
    texts: list[bytes | None] = [None if i % 7 == 0 else ("x" * (i % 5)).encode() for i in range(n)]
    expires = [None if i % 3 else float(i) for i in range(n)]
    columns = [
        _pgcopy.constant(b"tenant/ns", n),
        _pgcopy.fixed(vectors),
        _pgcopy.fixed(codes),
        _pgcopy.float8([1.5] * n),
        _pgcopy.float8(expires),
        _pgcopy.optional(ids),
        _pgcopy.optional(texts),
    ]
    rows: list[list[bytes | None]] = [
        [
            b"tenant/ns",
            vectors[i].tobytes(),
            codes[i].tobytes(),
            struct.pack(">d", 1.5),
            None if expires[i] is None else struct.pack(">d", expires[i]),
            ids[i],
            texts[i],
        ]
        for i in range(n)
    ]
    assert _pgcopy.binary_copy(columns).data.tobytes() == _row_by_row(rows)


def test_a_variable_column_before_fixed_ones_and_empty_values() -> None:
    values: list[bytes | None] = [b"", None, b"abc"]
    columns = [_pgcopy.optional(values), _pgcopy.constant(b"\x01", 3), _pgcopy.optional([None, None, None])]
    rows: list[list[bytes | None]] = [[v, b"\x01", None] for v in values]
    assert _pgcopy.binary_copy(columns).data.tobytes() == _row_by_row(rows)


def test_a_leading_fixed_column_is_set_after_the_build() -> None:
    n = 4
    columns = [
        _pgcopy.constant(b"ns", n),
        _pgcopy.constant(struct.pack(">i", 0), n),
        _pgcopy.optional([b"a", None, b"bc", b""]),
    ]
    payload = _pgcopy.binary_copy(columns)
    payload.set(1, struct.pack(">i", 77))
    rows: list[list[bytes | None]] = [[b"ns", struct.pack(">i", 77), v] for v in (b"a", None, b"bc", b"")]
    assert payload.data.tobytes() == _row_by_row(rows)
