"""Stored int8 codes: what a store keeps beside each vector loads into the same index as the vectors."""

from __future__ import annotations

import numpy as np
import pytest

from agentbus.memory import MemoryInputError, VectorIndex
from agentbus.memory.storage import decode_codes, encode_codes


def test_an_index_loaded_from_codes_equals_one_built_from_the_vectors() -> None:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((500, 40)).astype(np.float32)
    ids = [f"v{i}" for i in range(500)]
    built = VectorIndex(40, rerank="none")
    built.upsert_many(ids, x, [{"i": i} for i in range(500)])
    loaded = VectorIndex(40, rerank="none")
    codes, scales = decode_codes(encode_codes(x).tobytes(), 40)
    loaded.add_codes(ids, codes, scales, [{"i": i} for i in range(500)], np.full(500, np.inf))
    for q in rng.standard_normal((5, 40)).astype(np.float32):
        assert built.search(q, 10) == loaded.search(q, 10)
        assert built.search(q, 5, filter={"i": {"$lt": 100}}) == loaded.search(q, 5, filter={"i": {"$lt": 100}})
    assert loaded.admits(["v1", "v200", "nope"], {"i": {"$lt": 100}}) == {"v1": {"i": 1}}


def test_add_codes_replaces_existing_ids_and_honours_expiry() -> None:
    x = np.eye(4, dtype=np.float32)
    index = VectorIndex(4, rerank="none")
    index.upsert_many(["a", "b"], x[:2])
    codes, scales = decode_codes(encode_codes(x[2:]).tobytes(), 4)
    index.add_codes(["a", "c"], codes, scales, expires_at=np.array([np.inf, 10.0]))
    assert len(index) == 3
    assert index.search(x[2], 1, now=0)[0].id == "a"  # a now holds x[2]
    assert "c" in {h.id for h in index.search(x[3], 3, now=0)}
    assert "c" not in {h.id for h in index.search(x[3], 3, now=20)}  # expired at 10


def test_add_codes_refuses_mismatched_input_and_indexes_keeping_originals() -> None:
    codes, scales = decode_codes(encode_codes(np.eye(4, dtype=np.float32)).tobytes(), 4)
    with pytest.raises(ValueError, match="rerank='none'"):
        VectorIndex(4).add_codes(["a", "b", "c", "d"], codes, scales)
    with pytest.raises(MemoryInputError):
        VectorIndex(4, rerank="none").add_codes(["a", "b"], codes, scales)
    with pytest.raises(ValueError):
        decode_codes(b"\x00" * 7, 4)


def test_codes_made_for_the_store_are_those_the_index_kernel_makes() -> None:
    from agentbus.memory import kernels_cpu

    rng = np.random.default_rng(5)
    x = (rng.standard_normal((50_000, 384)) * rng.uniform(0.001, 1000.0, (50_000, 1))).astype(np.float32)
    x[7] = 0.0
    codes, scales = kernels_cpu.quantize(x)
    stored, stored_scales = decode_codes(encode_codes(x, normalize=False).tobytes(), 384)
    np.testing.assert_array_equal(stored, codes[:, :384])
    np.testing.assert_array_equal(stored_scales.view(np.uint32), scales.view(np.uint32))
