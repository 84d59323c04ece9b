"""Exact k-NN search: agentbus.memory vs numpy vs faiss-cpu ``IndexFlatIP``, in one run.

    python -m bench.memory [--n 1000000] [--dim 384] [--k 10] [--queries 200] [--batch 64] [--write-docs]

Random unit float32 vectors and queries (seeded).  Ground truth is the exact float32 top-k (numpy, in
row blocks).  Measures, for ours (int8 scan + float16 re-rank, ``VectorIndex``), the float32 numba
scan, numpy (matmul + argpartition) and faiss flat: single-query p50/p99, batch-of-``--batch``
throughput and recall@k; then a fresh process loading the vectors (time, VmRSS) and filtered searches.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from agentbus.memory import VectorIndex, kernels_cpu
from agentbus.memory.filters import MetadataColumns, compile_filter
from bench._docs import write_section

Search = Callable[[np.ndarray], np.ndarray]  # queries (nq, d) -> row ids (nq, k)


def rss_mb(field: str = "VmRSS") -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def unit_rows(rng: np.random.Generator, n: int, dim: int, chunk: int = 100_000) -> np.ndarray:
    x = np.empty((n, dim), np.float32)
    for a in range(0, n, chunk):
        b = min(n, a + chunk)
        x[a:b] = rng.standard_normal((b - a, dim), dtype=np.float32)
        x[a:b] /= np.linalg.norm(x[a:b], axis=1, keepdims=True)
    return x


def exact_topk(x: np.ndarray, q: np.ndarray, k: int, block: int = 131072) -> np.ndarray:
    best_s = np.full((q.shape[0], 0), -np.inf, np.float32)
    best_i = np.zeros((q.shape[0], 0), np.int64)
    for a in range(0, x.shape[0], block):
        s = q @ x[a : a + block].T
        part = np.argpartition(-s, min(k, s.shape[1] - 1), axis=1)[:, :k]
        best_s = np.hstack([best_s, np.take_along_axis(s, part, 1)])
        best_i = np.hstack([best_i, part + a])
    order = np.argsort(-best_s, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(best_i, order, 1)


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    k = truth.shape[1]
    return float(np.mean([len(set(f.tolist()) & set(t.tolist())) / k for f, t in zip(found, truth, strict=True)]))


class Load:
    """CPU used by this process and by everything else on the machine between start() and stop()."""

    def __init__(self) -> None:
        self.wall = self.cpu = self.others = 0.0

    @staticmethod
    def _machine() -> tuple[int, int]:
        with open("/proc/stat") as f:
            ticks = [int(v) for v in f.readline().split()[1:]]
        return sum(ticks), ticks[3] + ticks[4]  # all, idle + iowait

    def __enter__(self) -> Load:
        self._t, self._c, self._m = time.perf_counter(), sum(os.times()[:2]), self._machine()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self._t
        self.cpu = sum(os.times()[:2]) - self._c
        total, idle = (a - b for a, b in zip(self._machine(), self._m, strict=True))
        ncpu = os.cpu_count() or 1
        busy = 1 - idle / total if total else 0.0
        self.others = max(0.0, busy - self.cpu / (self.wall * ncpu))


def measure(search: Search, queries: np.ndarray, truth: np.ndarray, batch: int, single: int) -> dict[str, float]:
    search(queries[:1])  # warm-up: JIT cache load, thread pool start
    lat, found = [], []
    with Load() as load_single:
        for i in range(single):
            t = time.perf_counter()
            found.append(search(queries[i : i + 1])[0])
            lat.append(time.perf_counter() - t)
    nb = max(1, queries.shape[0] // batch) * batch
    search(queries[:batch])
    with Load() as load_batch:
        batch_found = [search(queries[a : a + batch]) for a in range(0, nb, batch)]
    return {
        "p50_ms": float(np.percentile(lat, 50) * 1e3),
        "p99_ms": float(np.percentile(lat, 99) * 1e3),
        "batch_qps": nb / load_batch.wall,
        # throughput had the process every core for itself: queries per CPU-second x cores
        "batch_qps_cpu": nb / max(load_batch.cpu, 1e-9) * (os.cpu_count() or 1),
        "recall_single": recall(np.array(found), truth[:single]),
        "recall_batch": recall(np.vstack(batch_found), truth[:nb]),
        "others": max(load_single.others, load_batch.others),
    }


def numpy_search(x: np.ndarray, k: int) -> Search:
    def search(q: np.ndarray) -> np.ndarray:
        s = q @ x.T
        part = np.argpartition(-s, k, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(s, part, 1), axis=1)
        return np.take_along_axis(part, order, 1)

    return search


def faiss_search(x: np.ndarray, k: int) -> tuple[Any, Search] | None:
    try:
        import faiss  # type: ignore[import-not-found]
    except ImportError:
        return None
    index = faiss.IndexFlatIP(x.shape[1])
    index.add(x)
    return faiss, lambda q: index.search(np.ascontiguousarray(q), k)[1]


def child_load(args: argparse.Namespace) -> None:
    """A fresh process: import, build the index chunk by chunk, first search; prints JSON."""
    rss0 = rss_mb()
    rng = np.random.default_rng(args.seed)
    index = VectorIndex(args.dim, capacity=args.n)
    build = 0.0
    for a in range(0, args.n, 100_000):
        b = min(args.n, a + 100_000)
        chunk = unit_rows(rng, b - a, args.dim)
        ids = [f"doc-{i}" for i in range(a, b)]
        t = time.perf_counter()
        index.upsert_many(ids, chunk)
        build += time.perf_counter() - t
    del chunk
    t = time.perf_counter()
    index.search(rng.standard_normal(args.dim).astype(np.float32), args.k)
    first = time.perf_counter() - t
    print(
        json.dumps(
            {
                "rss_before_mb": rss0,
                "build_s": build,
                "first_search_s": first,
                "rss_after_mb": rss_mb(),
                "hwm_mb": rss_mb("VmHWM"),
                "index_mb": index.nbytes / 2**20,
            }
        )
    )


def filtered(
    x: np.ndarray, codes: np.ndarray, scales: np.ndarray, orig: np.ndarray, q: np.ndarray, k: int
) -> dict[str, float]:
    n = x.shape[0]
    metas = [{"tenant": f"t{i % 100}", "day": i % 365} for i in range(n)]
    cols = MetadataColumns()
    cols.resize(n)
    out: dict[str, float] = {}
    spec = {"tenant": {"$in": ["t1", "t2", "t3", "t4", "t5", "t6", "t7", "t8", "t9", "t10"]}}
    t = time.perf_counter()
    mask10 = cols.evaluate(compile_filter(spec), metas, n)
    out["first_filter_s"] = time.perf_counter() - t
    t = time.perf_counter()
    for _ in range(10):
        mask10 = cols.evaluate(compile_filter(spec), metas, n)
    out["filter_ms"] = (time.perf_counter() - t) / 10 * 1e3
    mask1 = cols.evaluate(compile_filter({"tenant": "t7"}), metas, n)
    for name, mask in (("p50_10pct_ms", mask10), ("p50_1pct_ms", mask1)):
        kernels_cpu.search_int8(codes, scales, q[:1], k, mask=mask, rerank=orig)
        lat = []
        for i in range(min(20, q.shape[0])):
            t = time.perf_counter()
            ids, _ = kernels_cpu.search_int8(codes, scales, q[i : i + 1], k, mask=mask, rerank=orig)
            lat.append(time.perf_counter() - t)
            assert mask[ids[ids >= 0]].all()
        out[name] = float(np.median(lat) * 1e3)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=1_000_000)
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--baseline-queries", type=int, default=50, help="single queries timed for numpy/faiss")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--write-docs", action="store_true")
    p.add_argument("--child-load", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child_load:
        return child_load(args)
    cmd = [
        sys.executable,
        "-m",
        "bench.memory",
        "--child-load",
        f"--n={args.n}",
        f"--dim={args.dim}",
        f"--k={args.k}",
        f"--seed={args.seed}",
    ]
    load = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
    rng = np.random.default_rng(args.seed)
    x = unit_rows(rng, args.n, args.dim)
    q = unit_rows(rng, args.queries, args.dim)
    truth = exact_topk(x, q, args.k)
    ids = [f"doc-{i}" for i in range(args.n)]
    index = VectorIndex(args.dim, capacity=args.n)
    t = time.perf_counter()
    index.upsert_many(ids, x)
    build_s = time.perf_counter() - t

    def ours(qq: np.ndarray) -> np.ndarray:
        hits = index.search_batch(qq, args.k)
        return np.array([[int(h.id[4:]) for h in row] for row in hits])

    single, base_single = args.queries, min(args.queries, args.baseline_queries)
    rows: dict[str, dict[str, float]] = {"agentbus int8 + f16 re-rank": measure(ours, q, truth, args.batch, single)}
    rows["numba float32 scan"] = measure(
        lambda qq: kernels_cpu.search_exact(x, qq, args.k)[0], q, truth, args.batch, base_single
    )
    rows["numpy matmul + argpartition"] = measure(numpy_search(x, args.k), q, truth, args.batch, base_single)
    fs = faiss_search(x, args.k)
    if fs is None:
        print("faiss-cpu not importable: faiss skipped")
    else:
        faiss, search = fs
        rows["faiss-cpu IndexFlatIP"] = measure(search, q, truth, args.batch, base_single)
        # faiss hands batches of >= 20 queries to BLAS; its own AVX2 scan can be faster (it is here).
        # (A huge threshold such as 2**30 selects a much slower path in faiss 1.15: keep it modest.)
        faiss.cvar.distance_compute_blas_threshold = max(4096, 2 * args.batch)
        rows["faiss-cpu IndexFlatIP, BLAS off"] = measure(search, q, truth, args.batch, base_single)
    store = index._store
    filt = filtered(x, store.codes, store.scales, store.orig, q, args.k)  # type: ignore[arg-type]
    report(args, rows, load, build_s, index.nbytes, filt)


def report(
    args: argparse.Namespace,
    rows: dict[str, dict[str, float]],
    load: dict[str, Any],
    build_s: float,
    nbytes: int,
    filt: dict[str, float],
) -> None:
    lines = [
        f"{args.n:,} x {args.dim}-d random unit float32 vectors, k={args.k}, {args.queries} queries "
        f"(single-query figures for the baselines over the first {min(args.queries, args.baseline_queries)}), "
        f"batch of {args.batch}; {platform.machine()}, {os.cpu_count()} CPUs, numba threads = "
        f"{kernels_cpu.numba.get_num_threads()}.",
        "",
        f"| search | single p50 ms | single p99 ms | batch-{args.batch} q/s | q/s per CPU-s x cores "
        f"| recall@{args.k} | other load |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, r in rows.items():
        lines.append(
            f"| {name} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['batch_qps']:.0f} | {r['batch_qps_cpu']:.0f} | "
            f"{min(r['recall_single'], r['recall_batch']):.4f} | {r['others']:.0%} |"
        )
    lines += [
        "",
        "*q/s per CPU-s x cores*: the batch throughput had the process had every core to itself "
        "(queries / CPU-seconds used x cores). *other load*: share of the machine's CPU used by other "
        "processes while that row was measured (the development machine is shared).",
        "",
        f"- Index build from {args.n:,} in-memory float32 vectors (this process): {build_s:.2f} s; "
        f"vector arrays {nbytes / 2**20:.0f} MiB (int8 codes + float16 originals + scales).",
        f"- Fresh process (`--child-load`): build {load['build_s']:.2f} s, first search "
        f"{load['first_search_s'] * 1e3:.0f} ms (kernels from numba's on-disk cache), VmRSS "
        f"{load['rss_before_mb']:.0f} MiB after imports -> {load['rss_after_mb']:.0f} MiB with the index "
        f"(peak {load['hwm_mb']:.0f} MiB).",
        f"- Filters over {args.n:,} rows: first use of a field builds its column in {filt['first_filter_s']:.2f} s "
        f"(Python loop over the metadata), then a 10-value `$in` mask costs {filt['filter_ms']:.1f} ms; "
        f"filtered single-query p50 {filt['p50_10pct_ms']:.1f} ms at 10 % selectivity (masked scan), "
        f"{filt['p50_1pct_ms']:.1f} ms at 1 % (row-list scan).",
    ]
    body = "\n".join(lines)
    print(body)
    if args.write_docs:
        cmd = "python -m bench.memory " + " ".join(a for a in sys.argv[1:] if a != "--write-docs")
        print("wrote", write_section("Memory search", f"`{cmd.strip()}`\n\n{body}"))


if __name__ == "__main__":
    main()
