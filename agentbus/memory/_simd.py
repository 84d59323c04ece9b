"""Explicit-SIMD uint8 x int8 dot-product tiles for the numba kernels.

LLVM's auto-vectoriser turns a plain ``int8 x int8 -> int32`` reduction loop into 128-bit ``pmaddwd``
at best, and it cannot share one row load between several queries.  These numba intrinsics emit the
vector IR themselves.  Operands: stored rows are **uint8** (the int8 code + 128, full 8-bit precision),
queries are **int8 limited to [-63, 63]**.  Then a pair of products ``x[2i]*q[2i] + x[2i+1]*q[2i+1]``
never exceeds ``2 * 255 * 63 = 32130``, so on AVX2 one ``vpmaddubsw`` (32 multiply-adds into int16,
which can therefore not saturate) plus one ``vpmaddwd`` by ones (widen to int32) is exact.  Hosts
without AVX2 get the same arithmetic as generic LLVM vector IR (widen, multiply, add lane pairs).

A tile computes ``R`` rows by ``J`` queries (``R * J`` in 1, 2, 4, 8).  With one query it writes the
``R`` int32 dot products to ``out[0 : R]`` (``out`` 1-D, length >= 8); with several it writes row ``i``
to ``out[i, j0 : j0 + J]`` (``out`` a 2-D int32 array, one row per tile row, one column per query).
The vector length (the arrays' second dimension) must be a multiple of :data:`LANES`; callers pad
rows and queries with a query value of 0, which makes any padding of the rows irrelevant.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import llvmlite.binding as llvm
from llvmlite import ir
from numba import types
from numba.core import cgutils, config
from numba.extending import intrinsic

__all__ = [
    "LANES",
    "f32_to_f16_bits",
    "tile_gather_1x1",
    "tile_gather_2x4",
    "tile_gather_8x1",
    "tile_rows_1x1",
    "tile_rows_2x4",
    "tile_rows_8x1",
]

LANES = 32
_I8, _I16, _I32 = ir.IntType(8), ir.IntType(16), ir.IntType(32)
_V32I8 = ir.VectorType(_I8, LANES)
_V16I16 = ir.VectorType(_I16, 16)
_V8I32 = ir.VectorType(_I32, 8)


def _lanes(start: int, count: int, step: int) -> ir.Constant:
    return ir.Constant(ir.VectorType(_I32, count), list(range(start, start + step * count, step)))


def _use_avx2() -> bool:
    """AVX2 intrinsics only when numba compiles for a host (or declared target) that has AVX2."""
    features = getattr(config, "CPU_FEATURES", None)
    if features is not None:
        return "+avx2" in str(features)
    if getattr(config, "CPU_NAME", None) not in (None, "host"):
        return False
    try:
        return bool(llvm.get_host_cpu_features().get("avx2", False))
    except RuntimeError:  # feature query unsupported on this platform
        return False


def _pair_add(builder: ir.IRBuilder, v: ir.Value, count: int) -> ir.Value:
    """Sum neighbouring lanes: ``count`` lanes -> ``count // 2``."""
    half = count // 2
    return builder.add(
        builder.shuffle_vector(v, v, _lanes(0, half, 2)), builder.shuffle_vector(v, v, _lanes(1, half, 2))
    )


def _hadd(builder: ir.IRBuilder, a: ir.Value, b: ir.Value) -> ir.Value:
    """[a0+a1, a2+a3, a4+a5, a6+a7, b0+b1, b2+b3, b4+b5, b6+b7]."""
    return builder.add(builder.shuffle_vector(a, b, _lanes(0, 8, 2)), builder.shuffle_vector(a, b, _lanes(1, 8, 2)))


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


def _madd_factory(builder: ir.IRBuilder, avx2: bool) -> Callable[[ir.Value, ir.Value], ir.Value]:
    """``madd(x_u8, q_s8)``: <32 x i8> x <32 x i8> -> <8 x i32> sums of 4 neighbouring products."""
    if avx2:
        mod = builder.module
        ubsw = cgutils.get_or_insert_function(  # type: ignore[no-untyped-call]
            mod, ir.FunctionType(_V16I16, [_V32I8, _V32I8]), "llvm.x86.avx2.pmadd.ub.sw"
        )
        wd = cgutils.get_or_insert_function(  # type: ignore[no-untyped-call]
            mod, ir.FunctionType(_V8I32, [_V16I16, _V16I16]), "llvm.x86.avx2.pmadd.wd"
        )
        ones = ir.Constant(_V16I16, [1] * 16)

        def madd(x: ir.Value, q: ir.Value) -> ir.Value:
            return builder.call(wd, [builder.call(ubsw, [x, q]), ones])

        return madd

    wide = ir.VectorType(_I32, LANES)

    def madd_generic(x: ir.Value, q: ir.Value) -> ir.Value:
        m = builder.mul(builder.zext(x, wide), builder.sext(q, wide))
        return _pair_add(builder, _pair_add(builder, m, LANES), LANES // 2)

    return madd_generic


def _make_tile(nrows: int, nqueries: int, gather: bool) -> Any:
    """Build the intrinsic ``tile(X, r, Q, j0, out)`` (gather: ``tile(X, rows, o, Q, j0, out)``).

    Dense: rows ``r .. r+nrows-1`` of ``X``.  Gather: rows ``rows[o .. o+nrows-1]`` (``rows`` int64).
    Queries ``j0 .. j0+nqueries-1`` of ``Q``.
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
            row_ids = [
                builder.load(builder.gep(rows.data, [builder.add(ov, ir.Constant(intp, i))])) for i in range(nrows)
            ]
        else:
            row_ids = [builder.add(r0, ir.Constant(intp, i)) for i in range(nrows)]
        xptrs = [builder.gep(x.data, [builder.mul(r, xstride)]) for r in row_ids]
        qptrs = [
            builder.gep(q.data, [builder.mul(builder.add(j0, ir.Constant(intp, j)), qstride)]) for j in range(nqueries)
        ]
        madd = _madd_factory(builder, _use_avx2())
        zero = ir.Constant(_V8I32, [0] * 8)
        accp = [cgutils.alloca_once_value(builder, zero) for _ in range(nrows * nqueries)]  # type: ignore[no-untyped-call]
        nsteps = builder.udiv(ncols, ir.Constant(intp, LANES))
        with cgutils.for_range(builder, nsteps) as loop:
            off = builder.mul(loop.index, ir.Constant(intp, LANES))

            def load(base: ir.Value) -> ir.Value:
                return builder.load(builder.bitcast(builder.gep(base, [off]), _V32I8.as_pointer()), align=1)

            xs = [load(p) for p in xptrs]
            qs = [load(p) for p in qptrs]
            for i in range(nrows):
                for j in range(nqueries):
                    a = accp[i * nqueries + j]
                    builder.store(builder.add(builder.load(a), madd(xs[i], qs[j])), a)
        total = _reduce(builder, [builder.load(a) for a in accp])
        if nqueries == 1:
            builder.store(total, builder.bitcast(out.data, _V8I32.as_pointer()), align=4)
        else:  # out is 2-D: row i of the tile goes to out[i, j0 : j0 + nqueries]
            vty = ir.VectorType(_I32, nqueries)
            ostride = builder.extract_value(out.strides, 0)
            base = builder.gep(out.data, [j0])
            for i in range(nrows):
                part = builder.shuffle_vector(total, total, _lanes(i * nqueries, nqueries, 1))
                dst = builder.gep(builder.bitcast(base, _I8.as_pointer()), [builder.mul(ostride, ir.Constant(intp, i))])
                builder.store(part, builder.bitcast(dst, vty.as_pointer()), align=4)

    if gather:

        def typer_gather(typingctx: Any, x: Any, rows: Any, o: Any, q: Any, j0: Any, out: Any) -> Any:
            return types.void(x, rows, o, q, j0, out), codegen

        return intrinsic(typer_gather)

    def typer(typingctx: Any, x: Any, r0: Any, q: Any, j0: Any, out: Any) -> Any:
        return types.void(x, r0, q, j0, out), codegen

    return intrinsic(typer)


def _f16_typer(typingctx: Any, x: Any) -> Any:
    def codegen(context: Any, builder: ir.IRBuilder, sig: Any, args: Any) -> ir.Value:
        value = context.cast(builder, args[0], sig.args[0], types.float32)
        return builder.bitcast(builder.fptrunc(value, ir.HalfType()), _I16)  # vcvtps2ph with F16C

    return types.uint16(x), codegen


# float32 -> IEEE half (round to nearest even), returned as its uint16 bit pattern (numba has no float16).
f32_to_f16_bits: Callable[..., Any] = intrinsic(_f16_typer)

tile_rows_8x1: Callable[..., None] = _make_tile(8, 1, gather=False)
tile_rows_2x4: Callable[..., None] = _make_tile(2, 4, gather=False)
tile_rows_1x1: Callable[..., None] = _make_tile(1, 1, gather=False)
tile_gather_8x1: Callable[..., None] = _make_tile(8, 1, gather=True)
tile_gather_2x4: Callable[..., None] = _make_tile(2, 4, gather=True)
tile_gather_1x1: Callable[..., None] = _make_tile(1, 1, gather=True)
