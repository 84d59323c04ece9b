"""Memory through PostgreSQL: ingest rate, a fresh replica's cold load, its resident memory and recall.

    python -m bench.memory_store [--n 1000000] [--dim 384] [--batch 1000] [--writers 2] [--write-docs]

1. Stores N random unit vectors (each with a short text and metadata, sent as JSON-like lists,
   as POST /memory/store or ctx.memory hands them over) through the memory service, from
   ``--writers`` threads into one namespace; then ``--text-items`` text-only items that the hash
   embedder embeds.
2. For each cache mode, starts a fresh Python process that opens the namespace the way an API
   replica does on its first search and reports the time to that first answer, its resident memory
   (after imports, with the namespace, peak), the single-query latency and recall@10 against the
   exact float32 top-10:

   * ``int8`` (``AGENTBUS_MEMORY_BUDGET`` default, 640 MiB: a 1M x 384 namespace does not fit whole):
     int8 codes in memory, loaded from the stored codes, re-ranked against the float32 vectors read
     from PostgreSQL;
   * ``full`` (a budget of 4 GiB): int8 codes + float16 originals in memory, loaded from the vectors.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from bench._docs import write_section
from bench._roles import fresh_database

CHILD = """
import json, sys, time
t0 = time.perf_counter()
import numpy as np
from agentbus.services import MemoryService
from agentbus.store import Repositories
url, budget, queries_path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
queries = np.load(queries_path)
svc = MemoryService(Repositories.from_url(url).memory, budget=budget)
imported = time.perf_counter() - t0

def rss(key="VmRSS"):
    return int(open("/proc/self/status").read().split(key + ":")[1].split()[0]) // 1024

rss0 = rss()
t1 = time.perf_counter()
svc.search("bench", "big", vector=queries[0].tolist(), k=10)
first = time.perf_counter() - t1
lat, found = [], []
for q in queries:
    t = time.perf_counter()
    hits = svc.search("bench", "big", vector=q.tolist(), k=10)
    lat.append(time.perf_counter() - t)
    found.append([h["id"] for h in hits])
tier = next(iter(svc._cache.values())).tier
print(json.dumps({"import_s": imported, "first_search_s": first, "p50_ms": float(np.percentile(lat, 50)) * 1000,
                  "p99_ms": float(np.percentile(lat, 99)) * 1000, "rss_before_mb": rss0, "rss_mb": rss(),
                  "peak_mb": rss("VmHWM"), "found": found, "tier": tier}))
"""

MODES = {"int8": 640 << 20, "full": 4 << 30}


def _cpu_busy() -> tuple[float, float]:
    with open("/proc/stat") as f:
        vals = [float(x) for x in f.readline().split()[1:]]
    return sum(vals) - vals[3] - vals[4], sum(vals)


def _ingest(svc: object, n: int, dim: int, batch: int, writers: int) -> tuple[float, np.ndarray]:
    """Stores n items from ``writers`` threads; returns (seconds spent, all vectors)."""
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    starts = list(range(0, n, batch))
    lock = threading.Lock()
    errors: list[BaseException] = []

    def work() -> None:
        while True:
            with lock:
                if not starts:
                    return
                start = starts.pop(0)
            m = min(batch, n - start)
            items = [
                {
                    "id": f"i{start + j}",
                    "text": f"item {start + j} of the benchmark",
                    "metadata": {"g": (start + j) % 10},
                    "vector": vectors[start + j].tolist(),
                }
                for j in range(m)
            ]
            try:
                svc.store_items("bench", "big", items)  # type: ignore[attr-defined]
            except BaseException as exc:  # reported after the threads end
                errors.append(exc)
                return

    t0 = time.perf_counter()
    threads = [threading.Thread(target=work) for _ in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return time.perf_counter() - t0, vectors


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--writers", type=int, default=2)
    ap.add_argument("--text-items", type=int, default=20_000)
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument(
        "--pg-admin-url", default=os.environ.get("AGENTBUS_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
    )
    ap.add_argument("--write-docs", action="store_true")
    args = ap.parse_args()

    from agentbus.services import MemoryService
    from agentbus.store import Repositories

    url = fresh_database(args.pg_admin_url, "agentbus_bench_memory")
    store = Repositories.from_url(url)
    store.migrate()
    svc = MemoryService(store.memory, max_batch=max(args.batch, 1000), max_items=args.n + args.text_items + 1)
    svc.store_items("bench", "warm", [{"id": "w", "vector": [1.0] * args.dim}])  # compile the quantiser first
    busy0 = _cpu_busy()
    stored_s, vectors = _ingest(svc, args.n, args.dim, args.batch, args.writers)
    busy1 = _cpu_busy()
    load = (busy1[0] - busy0[0]) / max(busy1[1] - busy0[1], 1)
    t0 = time.perf_counter()
    for start in range(0, args.text_items, args.batch):
        m = min(args.batch, args.text_items - start)
        svc.store_items(
            "bench",
            "texts",
            [
                {"text": f"note {start + j} on project alpha-{(start + j) % 97}, deploy step {(start + j) % 13}"}
                for j in range(m)
            ],
        )
    text_s = time.perf_counter() - t0
    store.close()

    rng = np.random.default_rng(1)
    queries = rng.standard_normal((args.queries, args.dim)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    truth = [set(f"i{r}" for r in np.argpartition(-(vectors @ q), 10)[:10]) for q in queries]
    del vectors
    rows = [
        (
            f"store {args.n:,} items x {args.dim}-d, batches of {args.batch}, {args.writers} writer threads "
            "(memory service → PostgreSQL)",
            f"{args.n / stored_s:,.0f} items/s ({stored_s:.1f} s; the machine's "
            f"CPUs {load:.0%} busy meanwhile, this process and PostgreSQL included)",
        ),
        (
            f"store {args.text_items:,} text-only items (hash embedder), 1 writer",
            f"{args.text_items / text_s:,.0f} items/s",
        ),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        qpath = str(Path(tmp) / "queries.npy")
        np.save(qpath, queries)
        for mode, budget in MODES.items():
            out = subprocess.run(
                [sys.executable, "-c", CHILD, url, str(budget), qpath], capture_output=True, text=True, check=True
            )
            child = json.loads(out.stdout.strip().splitlines()[-1])
            recall = np.mean([len(truth[i] & set(f)) / 10 for i, f in enumerate(child["found"])])
            rows += [
                (
                    f"`{mode}` ({child['tier']}): fresh process, first search (cold load from PostgreSQL)",
                    f"{child['first_search_s']:.1f} s",
                ),
                (
                    f"`{mode}`: resident memory after imports → with the namespace (peak)",
                    f"{child['rss_before_mb']} MB → {child['rss_mb']} MB ({child['peak_mb']} MB)",
                ),
                (
                    f"`{mode}`: single query p50 / p99, recall@10 vs exact float32 ({args.queries} queries)",
                    f"{child['p50_ms']:.1f} ms / {child['p99_ms']:.1f} ms, {recall:.4f}",
                ),
            ]
    for k, v in rows:
        print(f"{k:100s} {v}")
    if args.write_docs:
        table = "| measure | result |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in rows)
        write_section(
            "Memory store and load",
            f"`python -m bench.memory_store --n {args.n} --dim {args.dim} --batch {args.batch} --writers "
            f"{args.writers}`, {time.strftime('%Y-%m-%d')}, local PostgreSQL 15, {os.cpu_count()} CPUs shared "
            f"with other work.\n\n{table}",
        )


if __name__ == "__main__":
    main()
