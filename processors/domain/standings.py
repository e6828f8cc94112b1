"""A race's standings: each racer's running total, how a window's seconds merge into it, and the ranking rule.

The ranking rule, the one copy: score desc, then racer id asc (``rank_key``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from processors.domain.scoring import output_units, units_to_score
from processors.domain.window import PendingRacer


def rank_key(score_units: int, racer_id: int) -> tuple[int, int]:
    """Sort key of the ranking rule: score desc, ties by racer id asc."""
    return -score_units, racer_id


@dataclass(slots=True)
class RacerTotal:
    """A racer's running total in a race, as the live item stores it.

    ``seconds`` is a bitset: bit ``s`` is set when second ``s`` has been counted.
    """

    name: str
    name_second: int
    score_units: int
    seconds: int
    last_second: int
    last_output: float
    finished_at_ms: int | None

    @property
    def score(self) -> float:
        return units_to_score(self.score_units)

    @property
    def finished(self) -> bool:
        return self.finished_at_ms is not None


def apply_pending(totals: dict[int, RacerTotal], pending_racers: Mapping[str, PendingRacer]) -> bool:
    """Merge a window's pending racers (state["races"][id]["r"]) into the totals.

    A second already counted (its bit is set) is ignored, so applying the same window
    twice, or overlapping windows, counts every second once. Returns whether anything changed.
    """
    changed = False
    for racer_key, pending in pending_racers.items():
        racer_id = int(racer_key)
        total = totals.get(racer_id)
        if total is None:
            total = totals[racer_id] = RacerTotal(pending["n"], pending["ns"], 0, 0, 0, 0.0, None)
            changed = True
        elif pending["ns"] > total.name_second or (pending["ns"] == total.name_second and pending["n"] > total.name):
            total.name = pending["n"]
            total.name_second = pending["ns"]
            changed = True
        seconds = total.seconds
        for second_key, output in pending["o"].items():
            second = int(second_key)
            bit = 1 << second
            if seconds & bit:
                continue
            seconds |= bit
            total.score_units += output_units(output)
            if second > total.last_second:
                total.last_second = second
                total.last_output = output
            changed = True
        total.seconds = seconds
        finished = pending["f"]
        if finished is not None and (total.finished_at_ms is None or finished > total.finished_at_ms):
            total.finished_at_ms = finished
            changed = True
    return changed


def finished_changes(old: Mapping[int, RacerTotal], new: Mapping[int, RacerTotal]) -> list[int]:
    """Racers whose final result must be (re)written: newly finished, or finished and changed since.

    A second delivered late, after the racer's final message, still reaches the final result.
    """
    changed = []
    for racer_id, total in new.items():
        if total.finished_at_ms is None:
            continue
        before = old.get(racer_id)
        if (
            before is None
            or before.finished_at_ms != total.finished_at_ms
            or before.score_units != total.score_units
            or before.last_second != total.last_second
            or before.name != total.name
        ):
            changed.append(racer_id)
    return sorted(changed)
