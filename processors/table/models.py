"""What the table module returns (frozen dataclasses) and the errors it raises."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class TableError(Exception):
    """Base class of the table module's errors."""


class InvalidCursor(TableError):
    """A start key that is not a key of this query (another partition, another index's shape): HTTP 400."""


class StoreUnavailable(TableError):
    """DynamoDB cannot be reached or is throttling: HTTP 503, try again later."""


@dataclass(frozen=True, slots=True)
class LiveRow:
    racer_id: int
    name: str
    score: float
    second: int
    output: float
    finished: bool


@dataclass(frozen=True, slots=True)
class LiveStandings:
    """A race's live standings; ``rows`` are ranked by score desc, then racer id asc."""

    race_id: int
    class_id: int
    rows: list[LiveRow]
    version: int
    updated_at_ms: int


@dataclass(frozen=True, slots=True)
class FinalResult:
    race_id: int
    class_id: int
    racer_id: int
    name: str
    score: float
    second: int
    finished_at_ms: int


@dataclass(frozen=True, slots=True)
class PersonalBest:
    class_id: int
    racer_id: int
    name: str
    score: float
    race_id: int


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a Query: ``last_key`` is DynamoDB's LastEvaluatedKey (``None`` on the last page), passed
    back as ``start_key`` for the next page. It is raw table data: whoever hands it to a client signs it."""

    items: list[T]
    last_key: dict[str, Any] | None
