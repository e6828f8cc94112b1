"""The tumbling-window state of the aggregator: readings folded per race and racer until written out.

The state is a plain JSON dict (Lambda passes it between invocations)::

    {"races": {"<raceId>": {"c": classId,
                            "r": {"<racerId>": {"n": name, "ns": second of that name,
                                                "o": {"<second>": output}, "f": finishedAtMs | None}}}},
     "w": newest Kinesis arrival time (ms) among the window's records (the aggregator's watermark)}

Folding is order-independent: duplicates are idempotent, a second seen with two different
outputs keeps the larger, the name comes from the latest second, "finished" is sticky.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NotRequired, TypedDict

from processors.domain.message import EVENT_FINAL, MAX_SECOND, Fields


class PendingRacer(TypedDict):
    """A racer's seconds in the window (keys kept short: the state travels as JSON, under 1 MB)."""

    n: str  # name, from the latest second
    ns: int  # the second that name came with
    o: dict[str, float]  # "<second>" -> output (the larger one if a second came twice)
    f: int | None  # finished at (device ms) of the "final" message, or None


class RaceWindow(TypedDict):
    c: int  # the race's class id
    r: dict[str, PendingRacer]  # "<racerId>" -> pending seconds


class WindowState(TypedDict):
    races: dict[str, RaceWindow]  # "<raceId>" -> the race's pending racers
    w: NotRequired[int]  # newest Kinesis arrival (ms) among the window's records: the aggregator's watermark


def new_state() -> WindowState:
    return {"races": {}}


def fold_fields(state: WindowState, rows: Iterable[Fields]) -> None:
    """Fold already validated field tuples (``message.decode_payloads``) into the window state."""
    _fold_fields(state.setdefault("races", {}), rows)


_SECOND_KEYS = tuple(str(second) for second in range(MAX_SECOND + 1))  # str(second) without the call


def _fold_fields(races: dict[str, RaceWindow], rows: Iterable[Fields]) -> None:
    last_race_id = last_class_id = None
    race: RaceWindow | None = None
    racers: dict[str, PendingRacer] = {}
    second_keys = _SECOND_KEYS
    for _uuid, event, device_ts, second, race_id, name, racer_id, class_id, _cadence, _resistance, output in rows:
        if race_id != last_race_id or class_id != last_class_id:
            race_key = str(race_id)
            race = races.get(race_key)
            if race is None:
                # The class is the race's own: the aggregator checks it against the race identity
                # before folding, so the first record's class is every record's class.
                race = races[race_key] = {"c": class_id, "r": {}}
            last_race_id = race_id
            last_class_id = class_id
            racers = race["r"]
        racer_key = str(racer_id)
        racer = racers.get(racer_key)
        if racer is None:  # the common case in a short window: the racer's first second
            racers[racer_key] = {
                "n": name,
                "ns": second,
                "o": {second_keys[second]: output},
                "f": device_ts if event == EVENT_FINAL else None,
            }
            continue
        if second > racer["ns"] or (second == racer["ns"] and name > racer["n"]):
            racer["n"] = name
            racer["ns"] = second
        outputs = racer["o"]
        second_key = second_keys[second]
        previous = outputs.get(second_key)
        if previous is None or output > previous:
            outputs[second_key] = output
        if event == EVENT_FINAL:
            finished = racer["f"]
            if finished is None or device_ts > finished:
                racer["f"] = device_ts


def state_seconds(state: WindowState) -> int:
    """How many (race, racer, second) entries the state holds: its size driver."""
    return sum(len(racer["o"]) for race in state.get("races", {}).values() for racer in race["r"].values())
