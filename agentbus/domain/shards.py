"""Partitioned orchestrators: which shard a job belongs to, and how many shards one orchestrator takes.

Every producer of control events (API, workers, orchestrators) and every orchestrator computes a
job's shard with ``shard_of``, so they must agree on K (``AGENTBUS_SHARDS``). The hash is CRC-32
of the job id's UTF-8 bytes: the same in every process and every Python version, unlike ``hash()``,
which is salted per process.

With K = 1 nothing changes: shard 0's stream key and lease name are those of the unpartitioned
bus (``shard_key``), so a deployment moves from 1 to K shards without renaming anything that holds
state, and a producer that was left at K = 1 still publishes to a stream that is read (shard 0's).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable

from agentbus.domain.errors import ConfigError


def check_shards(shards: int) -> int:
    if shards < 1:
        raise ConfigError(f"AGENTBUS_SHARDS must be 1 or more, got {shards}")
    return shards


def shard_of(job_id: str, shards: int) -> int:
    """The shard of ``job_id`` among ``shards``; stable across processes, hosts and restarts."""
    if shards <= 1:
        return 0
    return zlib.crc32(job_id.encode()) % shards


def shard_key(base: str, shard: int) -> str:
    """The Redis name of shard ``shard``'s copy of ``base``: ``base`` itself for shard 0."""
    return base if shard == 0 else f"{base}.{shard}"


def fair_share(shards: int, orchestrators: int) -> int:
    """How many shards one orchestrator may hold when ``orchestrators`` are live: together they cover all."""
    return math.ceil(shards / max(1, orchestrators))


def rebalance(held: Iterable[int], free: Iterable[int], share: int) -> tuple[list[int], list[int]]:
    """Which free shards to try to take and which held ones to give up, to hold ``share`` at most.

    Shard 0 is given up last (its holder also runs the deployment-wide maintenance, which a move
    interrupts), the others highest first; free shards are taken lowest first.
    """
    mine = sorted(set(held))
    if len(mine) > share:
        keep = sorted(mine, key=lambda k: (k != 0, k))[:share]
        return [], sorted(set(mine) - set(keep), reverse=True)
    room = share - len(mine)
    return sorted(set(free) - set(mine))[:room], []
