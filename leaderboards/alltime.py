"""The "All time" board of a class: every racer's personal-best output at each second (the class
history object, ``processors.history_store``) turned into a bounded, ranked form for the page.

The history object holds one series per racer who ever rode the class (up to 40,000 racers x 3,600
seconds); the browser needs, at the race's current second, the top rows and the rows around the
local racer. So per second the board carries:

- every ghost ranked (``[rank, racer_id, best]``, best desc, ties by racer id) while at most
  ``FULL_ROWS`` racers have a best at that second: ranks are exact;
- beyond that, the top ``TOP_ROWS`` and then one ghost every ``stride`` ranks (and the last): any
  output falls between two listed ranks, so its rank is known to within ``stride`` and the page
  marks it approximate. The size stays bounded (about ``FULL_ROWS`` entries a second) at any class size.

Built once per history object version (S3 ETag) per process and kept in a small module-level cache;
a request with the cache current costs one conditional GET (304, no body).
"""

from __future__ import annotations

import gzip
import math
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from races.models import Racer

from . import integrations

FULL_ROWS = 200
TOP_ROWS = 20
CACHED_CLASSES = 8
NAME_QUERY_CHUNK = 500


@dataclass(frozen=True)
class SecondBoard:
    second: int
    count: int  # racers with a best at this second
    stride: int  # 1: every ghost is listed (exact ranks)
    entries: list[list[Any]]  # [rank, racer_id, best], rank asc


@dataclass(frozen=True)
class AllTimeBoard:
    class_id: int
    updated_at_ms: int | None
    racer_count: int
    seconds: list[SecondBoard]  # index i = second i + 1
    names: dict[int, str]


def board_from_history(
    document: dict[str, Any] | None, *, class_id: int, full_rows: int = FULL_ROWS, top_rows: int = TOP_ROWS
) -> tuple[AllTimeBoard, dict[int, list[float | None]]]:
    """The bounded board and every racer's series (``racer id -> bests``) of a history document.

    Pure apart from the names (one SQL query per ``NAME_QUERY_CHUNK`` listed racers).
    """
    racers: dict[int, list[float | None]] = {}
    for key, series in ((document or {}).get("racers") or {}).items():
        if isinstance(series, list) and str(key).isdigit():
            racers[int(key)] = series
    ids = sorted(racers)
    length = max((len(series) for series in racers.values()), default=0)
    # One column per second (racers in id order), each sorted by value desc with a stable sort, so that
    # equal bests keep the lower racer id first. Sorting positions by the column's own __getitem__ keeps
    # the per-value work in C: 10,000 racers x 300 seconds take a few seconds, not half a minute.
    padded = [_numbers(racers[racer_id], length) for racer_id in ids]
    seconds: list[SecondBoard] = []
    listed: set[int] = set()
    for index, column in enumerate(zip(*padded, strict=True)):
        present = [position for position, value in enumerate(column) if value is not None]
        present.sort(key=column.__getitem__, reverse=True)
        count = len(present)
        if count <= full_rows:
            stride = 1
            ranks: Iterable[int] = range(count)
        else:
            # Top rows exactly, then evenly spaced ranks down to the last.
            stride = max(1, math.ceil((count - top_rows) / (full_rows - top_rows)))
            ranks = sorted({*range(top_rows), *range(top_rows, count, stride), count - 1})
        entries = [[rank + 1, ids[present[rank]], column[present[rank]]] for rank in ranks]
        listed.update(entry[1] for entry in entries)
        seconds.append(SecondBoard(index + 1, count, stride, entries))
    names = _names(listed)
    updated = (document or {}).get("updatedAt")
    board = AllTimeBoard(
        class_id=class_id,
        updated_at_ms=int(updated) if isinstance(updated, int) else None,
        racer_count=len(racers),
        seconds=seconds,
        names=names,
    )
    return board, racers


def _numbers(series: list, length: int) -> list[float | None]:
    """A racer's series as floats (None where never seen), padded to ``length``."""
    values = [float(value) if isinstance(value, int | float) else None for value in series]
    return values + [None] * (length - len(values))


def _names(racer_ids: set[int]) -> dict[int, str]:
    """Registered names; a racer known only from bikes shows as "Racer <id>" (history holds no names)."""
    ids = sorted(racer_ids)
    names: dict[int, str] = {}
    for start in range(0, len(ids), NAME_QUERY_CHUNK):
        chunk = ids[start : start + NAME_QUERY_CHUNK]
        names.update(Racer.objects.filter(racer_id__in=chunk).values_list("racer_id", "name"))
    return {racer_id: names.get(racer_id, f"Racer {racer_id}") for racer_id in ids}


@dataclass(frozen=True)
class _Cached:
    etag: str | None
    board: AllTimeBoard
    racers: dict[int, list[float | None]]


# class id -> the board of the history version last seen (bounded; a process serves few classes).
_cache: OrderedDict[int, _Cached] = OrderedDict()
_lock = threading.Lock()


def clear_cache() -> None:
    with _lock:
        _cache.clear()


def all_time_get(*, class_id: int) -> tuple[AllTimeBoard, dict[int, list[float | None]]]:
    """The class's board (and racers' series), rebuilt only when the history object changed.

    Raises ``integrations.HistoryUnavailable`` when S3 cannot be reached.
    """
    with _lock:
        cached = _cache.get(class_id)
    history = integrations.history_object_get(class_id=class_id, if_none_match=cached.etag if cached else None)
    if history is None:
        board, racers = board_from_history(None, class_id=class_id)
        entry = _Cached(None, board, racers)
    elif history.not_modified and cached is not None:
        entry = cached
    else:
        document = orjson.loads(gzip.decompress(b"".join(history.chunks or ())))
        board, racers = board_from_history(document, class_id=class_id)
        entry = _Cached(history.etag, board, racers)
    with _lock:
        _cache[class_id] = entry
        _cache.move_to_end(class_id)
        while len(_cache) > CACHED_CLASSES:
            _cache.popitem(last=False)
    return entry.board, entry.racers
