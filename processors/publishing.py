"""The standings message the publisher pushes to Channels groups (docs/contracts.md), as pure functions.

::

    {"type": "standings.update", "raceId", "classId", "total", "version", "updatedAt",
     "rows": [{"rank", "racerId", "name", "score", "second", "output", "finished"}, ...],   # top N
     "tail": [[rank, racerId, name, score, second, output, finished], ...]}               # the rest

The message is bounded: ``rows`` holds at most ``top_rows`` racers, and ``tail`` the others in a
compact positional form (about 40 bytes a racer), capped at ``MAX_TAIL_ROWS`` so that even a
race far beyond the designed 1,000 racers cannot produce an unbounded Redis message; ``total``
always says how many racers there are. Django-free: the leaderboards can import it too.
"""

from __future__ import annotations

from typing import Any

from processors.table import LiveStandings

MESSAGE_TYPE = "standings.update"
DEFAULT_TOP_ROWS = 100
MAX_TAIL_ROWS = 10_000


def row_payload(rank: int, row: Any) -> dict[str, Any]:
    """One standings row as pushed to browsers (docs/contracts.md); ``row`` has the LiveRow fields."""
    return {
        "rank": rank,
        "racerId": row.racer_id,
        "name": row.name,
        "score": row.score,
        "second": row.second,
        "output": row.output,
        "finished": row.finished,
    }


def race_group(race_id: int) -> str:
    return f"race.{int(race_id)}"


def class_group(class_id: int) -> str:
    return f"class.{int(class_id)}"


def standings_message(standings: LiveStandings, top_rows: int = DEFAULT_TOP_ROWS) -> dict[str, Any]:
    """The ``standings.update`` message for ranked live standings."""
    top_rows = max(int(top_rows), 0)
    rows = standings.rows
    return {
        "type": MESSAGE_TYPE,
        "raceId": standings.race_id,
        "classId": standings.class_id,
        "total": len(rows),
        "version": standings.version,
        "updatedAt": standings.updated_at_ms,
        "rows": [row_payload(rank, row) for rank, row in enumerate(rows[:top_rows], start=1)],
        "tail": [
            [rank, row.racer_id, row.name, row.score, row.second, row.output, row.finished]
            for rank, row in enumerate(rows[top_rows : top_rows + MAX_TAIL_ROWS], start=top_rows + 1)
        ],
    }
