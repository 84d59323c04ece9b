"""Memory through PostgreSQL: ingest rate, a fresh replica's cold load, its resident memory and recall.

    python -m bench.memory_store [--n 1000000] [--text-items N] [--dim 384] [--batch 1000]
                                 [--processes 2] [--writers 1]
                                 [--hybrid-only] [--reuse] [--write-docs]

1. Stores N random unit vectors (each with a short text and metadata, sent as JSON-like lists,
   as POST /memory/store or ctx.memory hands them over) through the memory service into one
   namespace, from ``--processes`` writer processes (as API replicas, or workers whose tasks call
   ``ctx.memory``, each with its own service and connections) of ``--writers`` threads each; then
   ``--text-items`` (default N) text-only items, which the hash embedder embeds, the same way into
   another.  For each it reports the rate and where the CPU went per 1,000 items: the writer
   processes (Python, building the batches included) and the PostgreSQL backends of their
   connections.
2. For each cache mode, starts a fresh Python process that opens the namespace the way an API
   replica does on its first search and reports the time to that first answer, its resident memory
   (after imports, with the namespace, peak), the single-query latency and recall@10 against the
   exact float32 top-10:

   * ``int8`` (``AGENTBUS_MEMORY_BUDGET`` default, 640 MiB: a 1M x 384 namespace does not fit whole):
     int8 codes in memory, loaded from the stored codes, re-ranked against the float32 vectors read
     from PostgreSQL;
   * ``full`` (a budget of 4 GiB): int8 codes + float16 originals in memory, loaded from the vectors.
3. In a fresh process, ``mode=hybrid`` searches of the text namespace (BM25 over the texts fused
   with the vector ranking): the first one (cold load + building the keyword index), resident
   memory, then p50 / p99 and known-item recall@10 (the query is a stored item's distinctive
   words; a hit is that item among the 10).

``--hybrid-only`` stores only the text items and measures only step 3; ``--reuse`` skips the ingest
and measures against the database a previous run left (``agentbus_bench_memory``).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

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

HYBRID_CHILD = """
import json, sys, time
import numpy as np
from agentbus.services import MemoryService
from agentbus.store import Repositories
url, wanted = sys.argv[1], json.loads(sys.argv[2])
svc = MemoryService(Repositories.from_url(url).memory)

def rss(key="VmRSS"):
    return int(open("/proc/self/status").read().split(key + ":")[1].split()[0]) // 1024

rss0 = rss()
t1 = time.perf_counter()
svc.search("bench", "texts", q="deploy step 3", k=10)  # the vectors' cold load
loaded = time.perf_counter() - t1
rss1 = rss()
svc.search("bench", "texts", q="deploy step 3", k=10, mode="hybrid")  # + the keyword index
first = time.perf_counter() - t1
cached = next(c for c in svc._cache.values() if c.keywords is not None)
lat, hits = [], 0
for item_id, q in wanted:
    t = time.perf_counter()
    found = svc.search("bench", "texts", q=q, k=10, mode="hybrid")
    lat.append(time.perf_counter() - t)
    hits += item_id in {h["id"] for h in found}
print(json.dumps({"first_search_s": first, "p50_ms": float(np.percentile(lat, 50)) * 1000,
                  "p99_ms": float(np.percentile(lat, 99)) * 1000, "rss_before_mb": rss0, "rss_mb": rss(),
                  "peak_mb": rss("VmHWM"), "recall": hits / len(wanted), "vectors_s": loaded,
                  "rss_vectors_mb": rss1, "keyword_mb": cached.keywords.nbytes / 2**20, "tier": cached.tier,
                  "charged_mb": cached.nbytes / 2**20}))
"""


def _text(j: int) -> str:
    return f"note {j} on project alpha-{j % 97}, deploy step {j % 13}"


def _backend_cpu(pid: int) -> float:
    """CPU seconds a PostgreSQL backend has used (same machine)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cpu_busy() -> tuple[float, float]:
    with open("/proc/stat") as f:
        vals = [float(x) for x in f.readline().split()[1:]]
    return sum(vals) - vals[3] - vals[4], sum(vals)


class Ingest:
    """Rate and CPU of one ingest: ``python_ms`` / ``pg_ms`` per 1,000 items (this process; the
    writers' PostgreSQL backends), ``busy`` the share of the machine's CPUs in use meanwhile."""

    def __init__(self, n: int, seconds: float, python_s: float, pg_s: float, busy: float) -> None:
        self.rate, self.seconds, self.busy = n / seconds, seconds, busy
        self.python_ms, self.pg_ms = python_s / n * 1e6, pg_s / n * 1e6

    def __str__(self) -> str:
        return (
            f"{self.rate:,.0f} items/s ({self.seconds:.1f} s; per 1,000 items {self.python_ms:.0f} ms CPU in "
            f"Python, {self.pg_ms:.0f} ms in PostgreSQL; the machine's CPUs {self.busy:.0%} busy, load "
            f"{os.getloadavg()[0]:.1f})"
        )


def _vectors(start: int, m: int, dim: int) -> np.ndarray:
    """Batch ``start``'s random unit vectors: seeded by the batch, so a writer process and the
    recall check make the same ones without passing 1.5 GB between processes."""
    v = np.random.default_rng(start).standard_normal((m, dim)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return v


def _batch(kind: str, start: int, m: int, dim: int) -> list[dict[str, object]]:
    """What ``POST /memory/store`` or ``ctx.memory`` hands the service: JSON-like items."""
    if kind == "vectors":
        vectors = _vectors(start, m, dim)
        return [
            {
                "id": f"i{start + j}",
                "text": f"item {start + j} of the benchmark",
                "metadata": {"g": (start + j) % 10},
                "vector": vectors[j].tolist(),
            }
            for j in range(m)
        ]
    return [{"id": f"t{start + j}", "text": _text(start + j), "metadata": {"g": (start + j) % 10}} for j in range(m)]


def _writer(
    url: str, kind: str, namespace: str, starts: list[int], n: int, a: argparse.Namespace, go: Any, out: Any
) -> None:
    """One writer process (an API replica, or a worker whose tasks call ``ctx.memory``): its own
    memory service and connections, ``a.writers`` threads over its share of the batches."""
    from agentbus.services import MemoryService
    from agentbus.store import Repositories

    svc = MemoryService(Repositories.from_url(url).memory, max_batch=max(a.batch, 1000), max_items=2 * n + 2)
    svc.store_items("bench", "warm", _batch(kind, 0, 1, a.dim))  # numba's compiled code loaded before the clock
    todo, lock, errors, pg_s = list(starts), threading.Lock(), [], [0.0]

    def work() -> None:
        db: Any = svc.store.db
        pid = db.execute_sql("SELECT pg_backend_pid()").fetchone()[0]  # this thread's connection
        cpu0 = _backend_cpu(pid)
        try:
            while True:
                with lock:
                    if not todo:
                        return
                    start = todo.pop(0)
                svc.store_items("bench", namespace, _batch(kind, start, min(a.batch, n - start), a.dim))
        except BaseException as exc:  # reported after the threads end
            errors.append(repr(exc))
        finally:
            with lock:
                pg_s[0] += _backend_cpu(pid) - cpu0

    go.wait()
    py0 = time.process_time()
    threads = [threading.Thread(target=work) for _ in range(a.writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out.put((time.process_time() - py0, pg_s[0], errors))


def _ingest(url: str, kind: str, namespace: str, n: int, a: argparse.Namespace) -> Ingest:
    """Stores n items from ``a.processes`` writer processes of ``a.writers`` threads each, the
    batches dealt out in turn; the clock starts when every process is ready."""
    ctx = multiprocessing.get_context("spawn")  # no forked copies of connections or numba state
    go, out = ctx.Barrier(a.processes + 1), ctx.Queue()
    starts = list(range(0, n, a.batch))
    procs = [
        ctx.Process(target=_writer, args=(url, kind, namespace, starts[i :: a.processes], n, a, go, out))
        for i in range(a.processes)
    ]
    for p in procs:
        p.start()
    go.wait()
    busy0, t0 = _cpu_busy(), time.perf_counter()
    results = [out.get() for _ in procs]
    seconds = time.perf_counter() - t0
    busy1 = _cpu_busy()
    for p in procs:
        p.join()
    errors = [e for r in results for e in r[2]]
    if errors:
        raise RuntimeError(f"{len(errors)} batches failed, first: {errors[0]}")
    busy = (busy1[0] - busy0[0]) / max(busy1[1] - busy0[1], 1)
    return Ingest(n, seconds, sum(r[0] for r in results), sum(r[1] for r in results), busy)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--processes", type=int, default=2, help="writer processes (API replicas or workers)")
    ap.add_argument("--writers", type=int, default=1, help="threads per writer process")
    ap.add_argument("--text-items", type=int, default=None, help="text-only items (default: --n)")
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument(
        "--pg-admin-url", default=os.environ.get("AGENTBUS_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
    )
    ap.add_argument("--hybrid-only", action="store_true", help="only the text items and hybrid search")
    ap.add_argument("--reuse", action="store_true", help="skip the ingest: the database of a previous run")
    ap.add_argument("--write-docs", action="store_true")
    args = ap.parse_args()
    n_text = args.n if args.text_items is None else args.text_items

    from agentbus.store import Repositories

    name = "agentbus_bench_memory"
    if args.reuse:
        url = urlparse(args.pg_admin_url)._replace(path=f"/{name}").geturl()
    else:
        url = fresh_database(args.pg_admin_url, name)
    store = Repositories.from_url(url)
    store.migrate()
    rows: list[tuple[str, str]] = []
    writers = f"{args.processes} writer processes x {args.writers} threads"
    if not args.reuse:
        if not args.hybrid_only:
            stored = _ingest(url, "vectors", "big", args.n, args)
            rows.append(
                (
                    f"store {args.n:,} items x {args.dim}-d with their vectors, batches of {args.batch}, "
                    f"{writers} (memory service → PostgreSQL)",
                    str(stored),
                )
            )
        texts = _ingest(url, "texts", "texts", n_text, args)
        rows.append(
            (f"store {n_text:,} text-only items (hash embedder), batches of {args.batch}, {writers}", str(texts))
        )
    store.close()

    vectors = np.empty((0, args.dim), np.float32)
    if not args.hybrid_only:
        vectors = np.concatenate(
            [_vectors(s, min(args.batch, args.n - s), args.dim) for s in range(0, args.n, args.batch)]
        )
    rng = np.random.default_rng(1)
    queries = rng.standard_normal((args.queries, args.dim)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    truth = [set(f"i{r}" for r in np.argpartition(-(vectors @ q), 10)[:10]) for q in queries]
    vectors = np.empty((0, args.dim), np.float32)  # 1.5 GB at 1M: the children need the memory
    with tempfile.TemporaryDirectory() as tmp:
        qpath = str(Path(tmp) / "queries.npy")
        np.save(qpath, queries)
        for mode, budget in ({} if args.hybrid_only or args.reuse else MODES).items():
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
        picks = np.random.default_rng(2).choice(n_text, size=min(args.queries, n_text), replace=False).tolist()
        wanted = [(f"t{j}", f"note {j} alpha-{j % 97}") for j in picks]
        out = subprocess.run(
            [sys.executable, "-c", HYBRID_CHILD, url, json.dumps(wanted)], capture_output=True, text=True, check=True
        )
        child = json.loads(out.stdout.strip().splitlines()[-1])
        rows += [
            (
                f"`hybrid` on the {n_text:,} text items: fresh process, first search (cold load + keyword index)",
                f"{child['first_search_s']:.1f} s ({child['vectors_s']:.1f} s the vectors' load, "
                f"{child['first_search_s'] - child['vectors_s']:.1f} s the keyword index)",
            ),
            (
                "`hybrid`: resident memory after imports → with vectors → and keyword index (peak)",
                f"{child['rss_before_mb']} MB → {child['rss_vectors_mb']} MB → {child['rss_mb']} MB "
                f"({child['peak_mb']} MB); keyword index {child['keyword_mb']:.0f} MB, namespace charged "
                f"{child['charged_mb']:.0f} MB ({child['tier']} tier)",
            ),
            (
                f"`hybrid`: single query p50 / p99, known-item recall@10 ({len(wanted)} queries)",
                f"{child['p50_ms']:.1f} ms / {child['p99_ms']:.1f} ms, {child['recall']:.2f}",
            ),
        ]
    for k, v in rows:
        print(f"{k:100s} {v}")
    if args.write_docs:
        table = "| measure | result |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in rows)
        write_section(
            "Memory store and load",
            f"`python -m bench.memory_store --n {args.n} --text-items {n_text} --dim {args.dim} --batch {args.batch} "
            f"--processes {args.processes} --writers {args.writers}`, {time.strftime('%Y-%m-%d')}, "
            "local PostgreSQL 15, "
            f"{os.cpu_count()} CPUs shared with other work.\n\n{table}",
        )


if __name__ == "__main__":
    main()
