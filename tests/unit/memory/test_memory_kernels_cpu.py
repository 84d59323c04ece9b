"""The numba CPU kernels against a numpy reference (ties considered), with masks, and int8 recall."""

from __future__ import annotations

import numpy as np
import pytest

from agentbus.memory import kernels_cpu


def unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def reference(x: np.ndarray, q: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    s = (q.astype(np.float64) @ x.astype(np.float64).T).astype(np.float32)
    if mask is not None:
        s[:, ~mask.astype(bool)] = -np.inf
    return s


def assert_topk(ids: np.ndarray, scores: np.ndarray, full: np.ndarray, k: int, atol: float = 1e-5) -> None:
    """``ids``/``scores`` are a valid top-k of the score matrix ``full``: right scores, any order of ties."""
    assert ids.shape == scores.shape == (full.shape[0], k)
    for j in range(full.shape[0]):
        valid = np.isfinite(full[j])
        want = np.sort(full[j][valid])[::-1][:k]
        got = ids[j][ids[j] >= 0]
        assert len(got) == len(want), "wrong number of results"
        assert len(set(got.tolist())) == len(got), "duplicate rows"
        assert (ids[j][len(got) :] == -1).all() and np.isneginf(scores[j][len(got) :]).all()
        np.testing.assert_allclose(scores[j][: len(got)], want, atol=atol)
        np.testing.assert_allclose(full[j][got], want, atol=atol)  # the rows really have those scores
        assert np.all(np.diff(scores[j][: len(got)]) <= 1e-7), "not sorted best first"


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(11)
    x = unit(rng, 3000, 48)
    x[100] = x[200]  # exact ties
    x[300] = x[200]
    q = unit(rng, 9, 48)
    q[0] = x[200]
    return x, q


@pytest.mark.parametrize("nq", [1, 9])
def test_exact_matches_numpy(data: tuple[np.ndarray, np.ndarray], nq: int) -> None:
    x, q = data
    ids, scores = kernels_cpu.search_exact(x, q[:nq], 10)
    assert_topk(ids, scores, reference(x, q[:nq]), 10)
    assert set(ids[0, :3].tolist()) == {100, 200, 300}


@pytest.mark.parametrize("keep", [0.5, 0.02])  # dense masked scan, then the row-list scan
def test_exact_and_int8_respect_the_mask(data: tuple[np.ndarray, np.ndarray], keep: float) -> None:
    x, q = data
    mask = np.random.default_rng(5).random(x.shape[0]) < keep
    full = reference(x, q, mask)
    ids, scores = kernels_cpu.search_exact(x, q, 10, mask=mask)
    assert_topk(ids, scores, full, 10)
    for nq in (1, 9):
        ids, scores = kernels_cpu.search_int8(*kernels_cpu.quantize(x), q[:nq], 10, mask=mask, rerank=x)
        assert_topk(ids, scores, full[:nq], 10)


@pytest.mark.parametrize("nq", [1, 2, 9])
def test_int8_with_float32_rerank_is_exact_here(data: tuple[np.ndarray, np.ndarray], nq: int) -> None:
    x, q = data
    codes, scales = kernels_cpu.quantize(x)
    ids, scores = kernels_cpu.search_int8(codes, scales, q[:nq], 10, rerank=x)
    assert_topk(ids, scores, reference(x, q[:nq]), 10)


def test_fewer_rows_than_k_and_empty_selection(data: tuple[np.ndarray, np.ndarray]) -> None:
    x, q = data
    mask = np.zeros(x.shape[0], bool)
    mask[[7, 9, 2999]] = True
    full = reference(x, q, mask)
    for ids, scores in (
        kernels_cpu.search_exact(x, q, 5, mask=mask),
        kernels_cpu.search_int8(*kernels_cpu.quantize(x), q, 5, mask=mask, rerank=x),
        kernels_cpu.search_int8(*kernels_cpu.quantize(x), q[:1], 5, mask=mask, rerank=x),
    ):
        assert_topk(ids, scores, full[: ids.shape[0]], 5)
    ids, scores = kernels_cpu.search_exact(x, q, 5, mask=np.zeros(x.shape[0], bool))
    assert (ids == -1).all() and np.isneginf(scores).all()


def test_n_limits_the_scan_to_the_first_rows(data: tuple[np.ndarray, np.ndarray]) -> None:
    x, q = data
    codes, scales = kernels_cpu.quantize(x)
    ids, scores = kernels_cpu.search_int8(codes, scales, q, 10, n=1001, rerank=x)
    assert_topk(ids, scores, reference(x[:1001], q), 10)


def test_int8_recall_against_exact_float32() -> None:
    rng = np.random.default_rng(1)
    x = unit(rng, 20_000, 64)
    q = unit(rng, 40, 64)
    truth, _ = kernels_cpu.search_exact(x, q, 10)
    codes, scales = kernels_cpu.quantize(x)
    assert codes.dtype == np.uint8 and codes.shape == (20_000, kernels_cpu.padded_dim(64))
    for rerank, floor in ((x.astype(np.float16), 0.99), (None, 0.95)):
        single = np.vstack([kernels_cpu.search_int8(codes, scales, q[i], 10, rerank=rerank)[0] for i in range(10)])
        batch = kernels_cpu.search_int8(codes, scales, q, 10, rerank=rerank)[0]
        for found in (single, batch):
            hits = [len(set(a.tolist()) & set(b.tolist())) for a, b in zip(found, truth, strict=False)]
            assert np.mean(hits) / 10 >= floor


def test_quantize_round_trip() -> None:
    rng = np.random.default_rng(2)
    x = unit(rng, 100, 40)
    x[3] = 0.0
    codes, scales = kernels_cpu.quantize(x)
    back = (codes[:, :40].astype(np.float32) - 128) * scales[:, None]
    assert np.abs(back - x).max() <= scales.max() / 2 + 1e-6
    assert (codes[:, 40:] == 128).all() and scales[3] == 0


def test_quantize_writes_the_same_float16_as_numpy() -> None:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((64, 40)).astype(np.float32)
    x[0, :8] = [65504.0, -65504.0, 1e-8, -1e-8, -0.0, 6.1e-5, 2049.0, 2051.0]  # range ends, subnormal, ties
    x[1] *= 1e-4
    half = np.empty(x.shape, np.float16)
    kernels_cpu.quantize(x, out_half=half)
    np.testing.assert_array_equal(half.view(np.uint16), x.astype(np.float16).view(np.uint16))
