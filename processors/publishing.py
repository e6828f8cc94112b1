"""The standings message the publisher pushes to Channels groups (docs/contracts.md), as pure functions.

::

    {"type": "standings.update", "race_id", "class_id", "total", "version", "updated_at",
     "rows": [{"rank", "racer_id", "name", "score", "second", "output", "finished"}, ...]}   # top N

The message is bounded: ``rows`` holds at most ``top_rows`` racers; ``total`` says how many racers
there are. The whole ranked board goes to Redis once per race version, separately (``board``,
``processors.channel_wire.board_key``), for consumers that follow one racer beyond the top rows.
Django-free: the leaderboards import it too.
"""

from __future__ import annotations

from typing import Any

from processors.table import LiveStandings

MESSAGE_TYPE = "standings.update"
DEFAULT_TOP_ROWS = 100
MAX_BOARD_ROWS = 10_000  # far beyond the designed 1,000 racers; keeps one Redis value bounded
BOARD_FIELDS = ("racer_id", "name", "score", "second", "output", "finished")


def row_payload(rank: int, row: Any) -> dict[str, Any]:
    """One standings row as pushed to browsers (docs/contracts.md); ``row`` has the LiveRow fields."""
    return {
        "rank": rank,
        "racer_id": row.racer_id,
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
        "race_id": standings.race_id,
        "class_id": standings.class_id,
        "total": len(rows),
        "version": standings.version,
        "updated_at": standings.updated_at_ms,
        "rows": [row_payload(rank, row) for rank, row in enumerate(rows[:top_rows], start=1)],
    }


def board(standings: LiveStandings) -> list[list[Any]]:
    """Every ranked row, compact (``BOARD_FIELDS``; rank = position + 1), at most ``MAX_BOARD_ROWS``."""
    return [
        [row.racer_id, row.name, row.score, row.second, row.output, row.finished]
        for row in standings.rows[:MAX_BOARD_ROWS]
    ]


def board_row(entries: list[list[Any]], racer_id: int) -> dict[str, Any] | None:
    """The browser row of ``racer_id`` from a compact ``board``, or None."""
    for position, entry in enumerate(entries):
        if len(entry) == len(BOARD_FIELDS) and entry[0] == racer_id:
            return {"rank": position + 1, **dict(zip(BOARD_FIELDS, entry, strict=True))}
    return None
