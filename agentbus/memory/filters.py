"""Metadata filters: a small JSON language compiled to a row mask that the scan applies before the top-k.

Grammar (keys are ANDed)::

    {"field": value}                           equality (same as {"$eq": value})
    {"field": {"$in": [v1, v2, ...]}}          any of the values
    {"field": {"$gte": 3, "$lt": 10}}          numeric range ($gt, $gte, $lt, $lte)
    {"field": {"$ne": value}}                  absent, or present with another value

Values are strings, numbers, booleans or null.  Numbers compare as numbers (``1 == 1.0``), booleans
only equal booleans, and a row lacking the field never matches equality, ``$in`` or a range.
Metadata values that are lists or objects never match.

Evaluation is vectorised: the first filter on a field builds a column for it (a float64 array for
numbers and an int32 array of dictionary codes for everything else) from the stored metadata; after
that the index keeps the column current on every upsert, so a filter over a million rows costs a
few numpy comparisons.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from agentbus.memory.errors import InvalidFilterError

__all__ = ["OPERATORS", "Clause", "MetadataColumns", "compile_filter"]

OPERATORS = ("$eq", "$ne", "$in", "$gt", "$gte", "$lt", "$lte")
# A filter is evaluated per search over every row: its size is bounded like any other input.
MAX_CLAUSES = 64
MAX_IN_VALUES = 1000
MAX_FIELD_NAME = 200
_RANGE = {"$gt": np.greater, "$gte": np.greater_equal, "$lt": np.less, "$lte": np.less_equal}
_MISSING = object()


@dataclass(frozen=True, slots=True)
class Clause:
    field: str
    op: str
    value: Any  # a scalar; a tuple of scalars for $in


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _scalar(fld: str, op: str, v: Any) -> Any:
    if v is None or isinstance(v, str | bool):
        return v
    if _is_number(v):
        if isinstance(v, float) and not math.isfinite(v):
            raise InvalidFilterError(f"filter on {fld!r}: {op} needs a finite number")
        return v
    raise InvalidFilterError(
        f"filter on {fld!r}: {op} takes strings, numbers, booleans or null, not {type(v).__name__}"
    )


def _clause(fld: str, op: str, operand: Any) -> Clause:
    if op not in OPERATORS:
        raise InvalidFilterError(f"unknown operator {op!r} on {fld!r}; known: {', '.join(OPERATORS)}")
    if op in _RANGE:
        if not _is_number(operand) or not math.isfinite(operand):
            raise InvalidFilterError(f"filter on {fld!r}: {op} needs a finite number, got {operand!r}")
        return Clause(fld, op, operand)
    if op == "$in":
        if isinstance(operand, str | bytes) or not isinstance(operand, Sequence):
            raise InvalidFilterError(f"filter on {fld!r}: $in needs a list of values")
        if len(operand) > MAX_IN_VALUES:
            raise InvalidFilterError(f"filter on {fld!r}: $in takes at most {MAX_IN_VALUES} values")
        return Clause(fld, op, tuple(_scalar(fld, op, v) for v in operand))
    return Clause(fld, op, _scalar(fld, op, operand))


def compile_filter(spec: Mapping[str, Any] | None) -> tuple[Clause, ...]:
    """Validate a filter object into clauses (all must hold); raises :class:`InvalidFilterError`."""
    if spec is None:
        return ()
    if not isinstance(spec, Mapping):
        raise InvalidFilterError("a filter must be a JSON object of field conditions")
    clauses: list[Clause] = []
    for fld, cond in spec.items():
        if not isinstance(fld, str) or not fld:
            raise InvalidFilterError("filter field names must be non-empty strings")
        if len(fld) > MAX_FIELD_NAME:
            raise InvalidFilterError(f"filter field names have at most {MAX_FIELD_NAME} characters")
        if fld.startswith("$"):
            raise InvalidFilterError(f"unknown operator {fld!r} at the top level; conditions are ANDed by key")
        if isinstance(cond, Mapping):
            if not cond:
                raise InvalidFilterError(f"filter on {fld!r} has an empty condition")
            for op, operand in cond.items():
                clauses.append(_clause(fld, str(op), operand))
        else:
            clauses.append(_clause(fld, "$eq", cond))
        if len(clauses) > MAX_CLAUSES:
            raise InvalidFilterError(f"a filter has at most {MAX_CLAUSES} conditions")
    return tuple(clauses)


def _category(v: Any) -> tuple[str, Any] | None:
    if v is None:
        return ("n", None)
    if isinstance(v, bool):
        return ("b", v)
    if isinstance(v, str):
        return ("s", v)
    return None


@dataclass(slots=True)
class _Column:
    num: np.ndarray
    cat: np.ndarray
    vocab: dict[tuple[str, Any], int] = field(default_factory=dict)

    def set(self, row: int, value: Any) -> None:
        try:
            self.num[row] = float(value) if _is_number(value) else np.nan
        except OverflowError:  # an int beyond float64: no range or equality can reach it
            self.num[row] = np.nan
        key = _category(value) if value is not _MISSING else None
        self.cat[row] = -1 if key is None else self.vocab.setdefault(key, len(self.vocab))

    def equals(self, v: Any, n: int) -> np.ndarray:
        if _is_number(v):
            return np.asarray(self.num[:n] == v)
        code = self.vocab.get(_category(v) or ("", None))
        return np.zeros(n, bool) if code is None else np.asarray(self.cat[:n] == code)


class MetadataColumns:
    """Columns of the filtered fields, row-aligned with the index's arrays."""

    def __init__(self) -> None:
        self._cols: dict[str, _Column] = {}
        self._capacity = 0

    def __contains__(self, name: str) -> bool:
        return name in self._cols

    def __len__(self) -> int:
        return len(self._cols)

    def resize(self, capacity: int, keep: np.ndarray | None = None) -> None:
        """Grow to ``capacity`` rows, or (with ``keep``) compact to the rows ``keep`` lists."""
        for col in self._cols.values():
            num = np.full(capacity, np.nan)
            cat = np.full(capacity, -1, np.int32)
            if keep is None:
                num[: self._capacity] = col.num
                cat[: self._capacity] = col.cat
            else:
                num[: keep.shape[0]] = col.num[keep]
                cat[: keep.shape[0]] = col.cat[keep]
            col.num, col.cat = num, cat
        self._capacity = capacity

    def set_row(self, row: int, metadata: Mapping[str, Any] | None) -> None:
        for name, col in self._cols.items():
            col.set(row, _MISSING if metadata is None else metadata.get(name, _MISSING))

    def _column(self, name: str, metadata: Sequence[Mapping[str, Any] | None], n: int) -> _Column:
        col = self._cols.get(name)
        if col is None:
            col = _Column(np.full(self._capacity, np.nan), np.full(self._capacity, -1, np.int32))
            for row in range(n):
                meta = metadata[row]
                if meta is not None and name in meta:
                    col.set(row, meta[name])
            self._cols[name] = col
        return col

    def evaluate(self, clauses: Sequence[Clause], metadata: Sequence[Mapping[str, Any] | None], n: int) -> np.ndarray:
        """Boolean ``(n,)`` mask of the rows satisfying every clause."""
        mask = np.ones(n, bool)
        for c in clauses:
            col = self._column(c.field, metadata, n)
            if c.op == "$eq":
                mask &= col.equals(c.value, n)
            elif c.op == "$ne":
                mask &= ~col.equals(c.value, n)
            elif c.op == "$in":
                hit = np.zeros(n, bool)
                nums = [v for v in c.value if _is_number(v)]
                if nums:
                    hit |= np.isin(col.num[:n], np.asarray(nums, np.float64))
                codes = [col.vocab[k] for v in c.value if (k := _category(v)) is not None and k in col.vocab]
                if codes:
                    hit |= np.isin(col.cat[:n], np.asarray(codes, np.int32))
                mask &= hit
            else:
                with np.errstate(invalid="ignore"):
                    mask &= _RANGE[c.op](col.num[:n], c.value)
        return mask
