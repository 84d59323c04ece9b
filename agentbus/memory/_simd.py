"""Explicit-SIMD int8 dot-product tiles for the numba kernels.

LLVM's auto-vectoriser turns a plain ``int8 x int8 -> int32`` reduction loop into 128-bit ``pmaddwd``
at best, and it cannot share one row load between several queries.  These numba intrinsics emit the
vector IR directly: every step loads 16 int8 lanes of each row and each query, sign-extends, multiplies
and adds neighbouring lane pairs (``(a*b)[2i] + (a*b)[2i+1]``).  That generic IR is what the x86 backend
lowers to one 256-bit ``vpmaddwd`` (16 multiply-adds); other targets get an equivalent sequence, so
nothing here is x86-only.

A tile computes ``R`` rows by ``J`` queries (``R * J`` in 1, 2, 4, 8) and writes the ``R * J`` int32
dot products, row-major (``out[i * J + j]``), into ``out`` (length >= 8).  The vector length (the
arrays' second dimension) must be a multiple of :data:`LANES`; callers pad with zeros.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = [
    "LANES",
    "tile_gather_1x1",
    "tile_gather_2x4",
    "tile_gather_8x1",
    "tile_rows_1x1",
    "tile_rows_2x4",
    "tile_rows_8x1",
]

LANES = 16
_I8 = ir.IntType(8)
_I32 = ir.IntType(32)
_V8I32 = ir.VectorType(_I32, 8)
_EVEN = ir.Constant(_V8I32, list(range(0, 16, 2)))
_ODD = ir.Constant(_V8I32, list(range(1, 16, 2)))


def _hadd(builder: ir.IRBuilder, a: ir.Value, b: ir.Value) -> ir.Value:
    """[a0+a1, a2+a3, a4+a5, a6+a7, b0+b1, b2+b3, b4+b5, b6+b7]."""
    return builder.add(builder.shuffle_vector(a, b, _EVEN), builder.shuffle_vector(a, b, _ODD))


def _reduce(builder: ir.IRBuilder, accs: list[ir.Value]) -> ir.Value:
    """Lane ``i`` of the result is the full horizontal sum of ``accs[i]`` (len(accs) in 1, 2, 4, 8)."""
    level = 0
    while len(accs) > 1:
        accs = [_hadd(builder, accs[i], accs[i + 1]) for i in range(0, len(accs), 2)]
        level += 1
    out = accs[0]
    for _ in range(level, 3):
        out = _hadd(builder, out, out)
    return out


def _row_ptr(builder: ir.IRBuilder, data: ir.Value, stride: ir.Value, row: ir.Value) -> ir.Value:
    return builder.gep(data, [builder.mul(row, stride)])


def _make_tile(nrows: int, nqueries: int, gather: bool) -> Any:
    """Build the intrinsic ``tile(X, r, Q, j0, out)``.

    Dense (``gather=False``): rows ``r .. r+nrows-1`` of ``X``.  Gather: ``r`` is ``(rows, o)`` and the
    rows are ``rows[o .. o+nrows-1]``.  Queries ``j0 .. j0+nqueries-1`` of ``Q``.
    """
    assert nrows * nqueries in (1, 2, 4, 8)

    def codegen(context: Any, builder: ir.IRBuilder, sig: Any, args: Any) -> None:
        if gather:
            xty, rowsty, oty, qty, jty, outty = sig.args
            xv, rowsv, ov, qv, j0, outv = args
            ov = context.cast(builder, ov, oty, types.intp)
        else:
            xty, rty, qty, jty, outty = sig.args
            xv, r0, qv, j0, outv = args
            r0 = context.cast(builder, r0, rty, types.intp)
        j0 = context.cast(builder, j0, jty, types.intp)
        x = context.make_array(xty)(context, builder, xv)
        q = context.make_array(qty)(context, builder, qv)
        out = context.make_array(outty)(context, builder, outv)
        xstride = builder.extract_value(x.strides, 0)
        qstride = builder.extract_value(q.strides, 0)
        ncols = builder.extract_value(x.shape, 1)
        intp = ncols.type
        if gather:
            rows = context.make_array(rowsty)(context, builder, rowsv)
            row_ids = []
            for i in range(nrows):
                idx = builder.add(ov, ir.Constant(intp, i))
                row_ids.append(builder.load(builder.gep(rows.data, [idx])))  # rows is an int64 array
        else:
            row_ids = [builder.add(r0, ir.Constant(intp, i)) for i in range(nrows)]
        xptrs = [_row_ptr(builder, x.data, xstride, r) for r in row_ids]
        qptrs = [_row_ptr(builder, q.data, qstride, builder.add(j0, ir.Constant(intp, j)))
                 for j in range(nqueries)]
        v16i8 = ir.VectorType(_I8, LANES)
        v16i32 = ir.VectorType(_I32, LANES)
        accp = [cgutils.alloca_once_value(builder, ir.Constant(_V8I32, [0] * 8))
                for _ in range(nrows * nqueries)]
        nsteps = builder.udiv(ncols, ir.Constant(intp, LANES))
        with cgutils.for_range(builder, nsteps) as loop:
            off = builder.mul(loop.index, ir.Constant(intp, LANES))

            def load(base: ir.Value) -> ir.Value:
                p = builder.bitcast(builder.gep(base, [off]), v16i8.as_pointer())
                return builder.sext(builder.load(p, align=1), v16i32)

            xs = [load(p) for p in xptrs]
            qs = [load(p) for p in qptrs]
            for i in range(nrows):
                for j in range(nqueries):
                    m = builder.mul(xs[i], qs[j])
                    pair = builder.add(builder.shuffle_vector(m, m, _EVEN), builder.shuffle_vector(m, m, _ODD))
                    a = accp[i * nqueries + j]
                    builder.store(builder.add(builder.load(a), pair), a)
        total = _reduce(builder, [builder.load(a) for a in accp])
        dst = builder.bitcast(out.data, _V8I32.as_pointer())
        builder.store(total, dst, align=4)

    if gather:
        def typer_g(typingctx: Any, x: Any, rows: Any, o: Any, q: Any, j0: Any, out: Any) -> Any:
            return types.void(x, rows, o, q, j0, out), codegen
        return intrinsic(typer_g)

    def typer(typingctx: Any, x: Any, r0: Any, q: Any, j0: Any, out: Any) -> Any:
        return types.void(x, r0, q, j0, out), codegen
    return intrinsic(typer)


tile_rows_8x1: Callable[..., None] = _make_tile(8, 1, gather=False)
tile_rows_1x1: Callable[..., None] = _make_tile(1, 1, gather=False)
tile_rows_2x4: Callable[..., None] = _make_tile(2, 4, gather=False)
tile_gather_8x1: Callable[..., None] = _make_tile(8, 1, gather=True)
tile_gather_1x1: Callable[..., None] = _make_tile(1, 1, gather=True)
tile_gather_2x4: Callable[..., None] = _make_tile(2, 4, gather=True)
