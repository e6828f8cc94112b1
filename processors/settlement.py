"""Settling races on a quiet stream (no records at all after a race's deadline).

The aggregator settles races as its shards pass their deadlines (``aggregator.settle_due``). When
no records flow, no aggregator runs, and the last race before a pause would wait for the next
bikes. ``settle_quiet`` covers that case: if no shard has written anything for ``idle_ms`` (every
shard caught up: nothing is pending), each race whose settle deadline is more than ``idle_ms`` in
the past settles. While any shard is active it does nothing: the aggregator decides. The races
app calls it with each rotation (every 5 minutes), so a quiet race settles at most one rotation
after its deadline + the idle time.
"""

from __future__ import annotations

import time

from processors.table import ResultsTable


def settle_quiet(table: ResultsTable, *, idle_ms: int, now_ms: int | None = None) -> list[int]:
    """Settle the races due when every shard is idle. Returns their ids. Errors are the table module's."""
    now = now_ms if now_ms is not None else int(time.time() * 1000)
    if any(now - mark.updated_at_ms <= idle_ms for mark in table.watermarks()):
        return []
    settled = []
    for race in table.races_due(now - idle_ms):
        table.settle_race(race, now_ms=now)
        settled.append(race.race_id)
    return settled
