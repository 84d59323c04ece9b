"""Memory through PostgreSQL: store throughput, and a fresh process loading a namespace.

    python -m bench.memory_store [--n 1000000] [--dim 384] [--batch 1000] [--write-docs]

Stores N random unit vectors (with a short text and metadata each) through the memory service
in batches (what POST /memory/store does, without HTTP), then starts a fresh Python process
that opens the namespace the way an API replica does on its first search: it reads every
row from PostgreSQL into the int8 + float16 index, then answers a query. Prints items/s, the
load time and the fresh process's resident memory.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import numpy as np

from bench._docs import write_section
from bench._roles import fresh_database

CHILD = """
import json, resource, sys, time
t0 = time.perf_counter()
from agentbus.services import MemoryService
from agentbus.store import Store
import numpy as np
svc = MemoryService(Store.from_url(sys.argv[1]))
imported = time.perf_counter() - t0
rss0 = int(open("/proc/self/status").read().split("VmRSS:")[1].split()[0]) // 1024
t1 = time.perf_counter()
q = np.random.default_rng(1).standard_normal(int(sys.argv[2])).astype("float32").tolist()
hits = svc.search("bench", "big", vector=q, k=10)
first = time.perf_counter() - t1
t2 = time.perf_counter()
svc.search("bench", "big", vector=q, k=10)
second = time.perf_counter() - t2
status = open("/proc/self/status").read()
rss = int(status.split("VmRSS:")[1].split()[0]) // 1024
hwm = int(status.split("VmHWM:")[1].split()[0]) // 1024
print(json.dumps({"import_s": imported, "first_search_s": first, "warm_search_ms": second * 1000,
                  "rss_before_mb": rss0, "rss_mb": rss, "peak_mb": hwm, "hits": len(hits)}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument(
        "--pg-admin-url", default=os.environ.get("AGENTBUS_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
    )
    ap.add_argument("--write-docs", action="store_true")
    args = ap.parse_args()

    from agentbus.services import MemoryService
    from agentbus.store import Store

    url = fresh_database(args.pg_admin_url, "agentbus_bench_memory")
    store = Store.from_url(url)
    store.migrate()
    svc = MemoryService(store, max_batch=args.batch, max_items=args.n + 1)
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    for start in range(0, args.n, args.batch):
        m = min(args.batch, args.n - start)
        v = rng.standard_normal((m, args.dim)).astype(np.float32)
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        items = [{"id": f"i{start + j}", "text": f"item {start + j}", "metadata": {"g": (start + j) % 10},
                  "vector": v[j].tolist()} for j in range(m)]  # fmt: skip
        svc.store_items("bench", "big", items)
    stored_s = time.perf_counter() - t0
    store.close()
    out = subprocess.run([sys.executable, "-c", CHILD, url, str(args.dim)], capture_output=True, text=True, check=True)
    import json

    child = json.loads(out.stdout.strip().splitlines()[-1])
    rows = [
        (f"store {args.n:,} items x {args.dim}-d in batches of {args.batch} (memory service → PostgreSQL)",
         f"{args.n / stored_s:,.0f} items/s ({stored_s:.1f} s)"),
        ("fresh process: load the namespace from PostgreSQL + first search", f"{child['first_search_s']:.1f} s"),
        ("fresh process: a warm search after that", f"{child['warm_search_ms']:.1f} ms"),
        ("fresh process resident memory: after imports → with the namespace (peak)",
         f"{child['rss_before_mb']} MB → {child['rss_mb']} MB ({child['peak_mb']} MB)"),
    ]  # fmt: skip
    for k, v in rows:
        print(f"{k:90s} {v}")
    if args.write_docs:
        table = "| measure | result |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in rows)
        write_section("Memory store and load", f"`python -m bench.memory_store --n {args.n} --dim {args.dim}`, "
                      f"{time.strftime('%Y-%m-%d')}, local PostgreSQL.\n\n{table}")  # fmt: skip


if __name__ == "__main__":
    main()
