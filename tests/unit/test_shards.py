"""The partition rule and the share of shards each orchestrator holds (domain/shards.py)."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections import Counter

import pytest

from agentbus.domain import ConfigError
from agentbus.domain.shards import check_shards, fair_share, rebalance, shard_key, shard_of


def test_one_shard_puts_every_job_on_shard_zero() -> None:
    assert {shard_of(uuid.uuid4().hex, 1) for _ in range(100)} == {0}


def test_one_shard_keeps_the_names_of_an_unpartitioned_bus() -> None:
    assert shard_key("agentbus:control", 0) == "agentbus:control"
    assert shard_key("orchestrator", 0) == "orchestrator"
    assert shard_key("agentbus:control", 3) == "agentbus:control.3"


def test_the_shard_of_a_job_is_the_same_in_every_process() -> None:
    """Python's ``hash()`` is salted per process: a rule built on it would send a job's events to
    different shards from the API and from a worker."""
    ids = [f"job-{i}" for i in range(20)]
    here = [shard_of(j, 7) for j in ids]
    code = f"from agentbus.domain.shards import shard_of; print([shard_of(j, 7) for j in {ids!r}])"
    for seed in ("1", "2"):
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, env={"PYTHONHASHSEED": seed}
        )
        assert out.stdout.strip() == str(here)


def test_known_ids_keep_their_shard() -> None:
    """Pinned values: a change of the hash would strand every queued event of a running deployment."""
    assert [shard_of(j, 4) for j in ("a", "b", "job-1", "0" * 32)] == [3, 1, 3, 0]


def test_jobs_spread_over_all_shards() -> None:
    counts = Counter(shard_of(uuid.uuid4().hex, 4) for _ in range(4000))
    assert set(counts) == {0, 1, 2, 3}
    assert min(counts.values()) > 800  # each near 1,000: no shard left idle or overloaded


def test_zero_shards_is_refused() -> None:
    with pytest.raises(ConfigError):
        check_shards(0)
    assert check_shards(4) == 4


@pytest.mark.parametrize(
    ("shards", "live", "share"), [(1, 1, 1), (1, 3, 1), (4, 1, 4), (4, 2, 2), (4, 3, 2), (4, 5, 1)]
)
def test_the_live_orchestrators_shares_cover_every_shard(shards: int, live: int, share: int) -> None:
    assert fair_share(shards, live) == share
    assert share * live >= shards


def test_a_lone_orchestrator_takes_every_free_shard() -> None:
    assert rebalance([], [0, 1, 2, 3], fair_share(4, 1)) == ([0, 1, 2, 3], [])


def test_a_newcomer_makes_the_holder_give_up_shards_keeping_shard_zero() -> None:
    assert rebalance([0, 1, 2, 3], [], fair_share(4, 2)) == ([], [3, 2])
    assert rebalance([1, 2, 0], [], 1) == ([], [2, 1])


def test_a_standby_takes_only_what_its_share_allows() -> None:
    assert rebalance([2], [0, 1, 3], 2) == ([0], [])
    assert rebalance([0, 1], [2, 3], 2) == ([], [])


def test_three_orchestrators_converge_on_a_cover_of_four_shards_and_a_death_moves_its_shards() -> None:
    """The lease rule played in rounds: each orchestrator renews, then takes or gives (no Redis)."""
    owner: dict[int, str] = {}

    def round_(live: list[str]) -> None:
        for name in live:
            held = [k for k, o in owner.items() if o == name]
            free = [k for k in range(4) if k not in owner]
            take, give = rebalance(held, free, fair_share(4, len(live)))
            for k in give:
                del owner[k]
            for k in take:
                owner[k] = name

    for _ in range(3):
        round_(["a", "b", "c"])
    assert sorted(owner) == [0, 1, 2, 3]
    assert max(Counter(owner.values()).values()) == 2
    doomed = owner[0]
    for k in [k for k, o in owner.items() if o == doomed]:
        del owner[k]  # its leases expired
    survivors = [n for n in ("a", "b", "c") if n != doomed]
    round_(survivors)
    assert sorted(owner) == [0, 1, 2, 3] and set(owner.values()) <= set(survivors)
