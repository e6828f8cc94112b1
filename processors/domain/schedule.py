"""The schedule: a race's identity (A0), as the races app publishes it, and the checks of a record against it."""

from __future__ import annotations

from dataclasses import dataclass

from processors.domain.message import BadRecord, Reason


@dataclass(frozen=True, slots=True)
class RaceIdentity:
    """What the races app publishes about a race, and what the pipeline adds when it settles.

    Times are ms since the epoch. ``settle_at_ms`` = end + grace: a record that arrived in the
    stream after it is ``late``. ``settled_at_ms`` is set once the race's results are final.
    """

    race_id: int
    class_id: int
    starts_at_ms: int
    ends_at_ms: int
    length_s: int
    settle_at_ms: int
    cancelled: bool = False
    settled_at_ms: int | None = None

    @property
    def settled(self) -> bool:
        return self.settled_at_ms is not None


def check_schedule(race: RaceIdentity | None, class_id: int, second: int, arrival_ms: int) -> BadRecord | None:
    """Why a valid bike message does not fit its race, or ``None`` when it counts.

    ``arrival_ms`` is when the record reached the stream (Kinesis approximateArrivalTimestamp),
    not when it is processed: a lagging consumer does not make a punctual record late.
    """
    if race is None:
        return BadRecord(Reason.UNKNOWN_RACE, "no such race")
    if race.cancelled:
        return BadRecord(Reason.UNKNOWN_RACE, f"race {race.race_id} was cancelled")
    if class_id != race.class_id:
        return BadRecord(Reason.CLASS_MISMATCH, f"classId {class_id}, race {race.race_id} is class {race.class_id}")
    if second > race.length_s:
        return BadRecord(Reason.SECOND_OUT_OF_RACE, f"second {second}, race {race.race_id} lasts {race.length_s} s")
    if race.settled:
        return BadRecord(Reason.LATE, f"race {race.race_id} settled at {race.settled_at_ms}")
    if arrival_ms > race.settle_at_ms:
        return BadRecord(Reason.LATE, f"arrived at {arrival_ms}, race {race.race_id} settles at {race.settle_at_ms}")
    return None
