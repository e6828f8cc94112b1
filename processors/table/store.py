"""``ResultsTable``: every read and write of the table (GetItem, Query, BatchGet, writes; never Scan)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from processors.clients import PARALLEL_REQUESTS, aws_client, cached
from processors.config import get_config
from processors.domain.schedule import RaceIdentity
from processors.domain.scoring import is_better_best, output_units
from processors.domain.standings import RacerTotal, apply_pending
from processors.domain.window import PendingRacer
from processors.retry import GaveUp, TryAgain, attempts
from processors.table import items
from processors.table.boards import BoardKey, BoardMemory, KnownBoard
from processors.table.models import (
    FinalResult,
    InvalidCursor,
    LiveStandings,
    Page,
    PersonalBest,
    StoreUnavailable,
)
from processors.table.schema import GSI1, GSI1_PK, GSI1_SK, GSI2, GSI2_PK, GSI2_SK, PK, SK

T = TypeVar("T")

MAX_PAGE = 1000
BATCH_WRITE_MAX = 25
BATCH_GET_MAX = 100
TRANSACT_WRITE_MAX = 100
MAX_BATCH_ATTEMPTS = 8
MAX_CONFLICT_ATTEMPTS = 10
PARALLEL_PUTS = PARALLEL_REQUESTS  # the client's connection pool is as large

# What ``items.final_result_from_item`` / ``personal_best_from_item`` read: Queries project to these, so answers
# leave out the six key attributes (about half of a result item).
FINAL_RESULT_ATTRIBUTES = ("raceId", "classId", "racerId", "name", "score", "second", "finishedAt")
PERSONAL_BEST_ATTRIBUTES = ("classId", "racerId", "name", "score", "raceId")

_UNAVAILABLE_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
        "TransactionInProgressException",
    }
)


@contextmanager
def _store_errors() -> Iterator[None]:
    """Connection failures and throttling (after botocore's own retries) become ``StoreUnavailable``."""
    try:
        yield
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in _UNAVAILABLE_CODES:
            raise StoreUnavailable(str(exc)) from exc
        raise
    except BotoCoreError as exc:
        raise StoreUnavailable(str(exc)) from exc


def _until_done(send: Callable[[], None], gave_up: str) -> None:
    """``send`` until it stops raising ``TryAgain`` (unprocessed items), with the one retry policy."""
    try:
        for attempt in attempts(MAX_BATCH_ATTEMPTS):
            with attempt:
                send()
    except GaveUp as exc:
        raise StoreUnavailable(f"{gave_up} after {MAX_BATCH_ATTEMPTS} attempts") from exc


_ITEM_SIZE_REFUSAL = "Item size has exceeded"


@dataclass(frozen=True, slots=True)
class MergeOutcome:
    """What ``merge_live`` did with a window's racers.

    ``too_large`` (over the guard, or refused by DynamoDB for its size) and ``settled`` (the race
    has settled: its live item is frozen) mean nothing was written; ``rejected`` are new racers
    refused because the race was full (never written, whatever else happened).
    """

    written: bool
    attempts: int
    racers: int
    item_bytes: int
    too_large: bool = False
    settled: bool = False
    rejected: Mapping[str, PendingRacer] = field(default_factory=dict)
    # A split board (several parts) can write some parts and not others: the racers not written
    # (besides ``rejected``). None: all of them when ``too_large`` or ``settled``, else none.
    unwritten: Mapping[str, PendingRacer] | None = None


@dataclass(frozen=True, slots=True)
class SettleOutcome:
    race_id: int
    finished: int  # racers the live item marks finished
    reconciled: int  # final results written now because finals had not (or not the same)


@dataclass(frozen=True, slots=True)
class Watermark:
    shard_id: str
    arrival_ms: int
    updated_at_ms: int


class ResultsTable:
    """The table behind a small API. ``client`` is a boto3 DynamoDB low-level client."""

    def __init__(
        self, client: Any, table_name: str, *, board_parts: int = 1, boards: BoardMemory | None = None
    ) -> None:
        """``board_parts``: how many parts the live board of a race this table starts gets (1: one item).

        ``boards``: the live boards this writer stored last (``processors.table.boards``); each table
        object has its own unless one is given.
        """
        self._client = client
        self._table = table_name
        self._board_parts = min(max(1, board_parts), items.MAX_BOARD_PARTS)
        self._boards = boards if boards is not None else BoardMemory()

    @property
    def table_name(self) -> str:
        return self._table

    # --- reads ---------------------------------------------------------------------------

    def live_standings(self, race_id: int) -> LiveStandings | None:
        """A1: the race's live standings, ranked; ``None`` before any reading.

        One GetItem; a split board's summary is followed by one BatchGetItem of its parts.
        """
        summary, boards = self._live_items(race_id)
        return items.live_standings_from_parts(summary, boards) if summary else None

    def live_totals(self, race_id: int) -> dict[int, RacerTotal]:
        """Every racer's running total in the race's live board (scores in exact units; for checks and tools)."""
        totals: dict[int, RacerTotal] = {}
        for board in self._live_items(race_id, consistent=True)[1]:
            totals.update(items.live_totals(board))
        return totals

    def _live_items(
        self, race_id: int, *, consistent: bool = False
    ) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        """(the race's live item, the items holding its racers): the item itself, or a split board's parts."""
        item = self._get(items.live_key(race_id), consistent=consistent)
        if not item:
            return None, []
        if items.is_split_summary(item):
            return item, self._live_parts(race_id, items.live_parts(item), consistent=consistent)
        return item, [item]

    def _live_parts(self, race_id: int, parts: int, *, consistent: bool = False) -> list[dict[str, Any]]:
        """Every part item of a split board that exists (a part nobody rode in is absent until settled)."""
        keys = [items.live_part_key(race_id, part) for part in range(parts)]
        return sorted(self._batch_get(keys, consistent=consistent), key=lambda item: int(item[items.PART]["N"]))

    def race_results(
        self, race_id: int, *, limit: int = 100, start_key: Mapping[str, Any] | None = None
    ) -> Page[FinalResult]:
        """A2: final results of a race, score desc (ties: racer id asc)."""
        return self._query_page(
            GSI1,
            GSI1_PK,
            items.race_results_gsi1pk(race_id),
            limit,
            start_key,
            items.final_result_from_item,
            False,
            FINAL_RESULT_ATTRIBUTES,
        )

    def class_leaderboard(
        self, class_id: int, *, limit: int = 100, start_key: Mapping[str, Any] | None = None
    ) -> Page[PersonalBest]:
        """A3: each racer's best final score in the class, desc (ties: racer id asc)."""
        return self._query_page(
            GSI1,
            GSI1_PK,
            items.class_bests_gsi1pk(class_id),
            limit,
            start_key,
            items.personal_best_from_item,
            False,
            PERSONAL_BEST_ATTRIBUTES,
        )

    def racer_results(
        self, racer_id: int, *, limit: int = 100, start_key: Mapping[str, Any] | None = None
    ) -> Page[FinalResult]:
        """A4: a racer's final results across races, newest race first."""
        return self._query_page(
            GSI2,
            GSI2_PK,
            items.racer_gsi2pk(racer_id),
            limit,
            start_key,
            items.final_result_from_item,
            False,
            FINAL_RESULT_ATTRIBUTES,
        )

    def personal_best(self, class_id: int, racer_id: int) -> PersonalBest | None:
        """A5: a racer's personal best in a class (one GetItem)."""
        item = self._get(items.best_key(class_id, racer_id))
        return items.personal_best_from_item(item) if item else None

    def racer_race_seconds(self, race_id: int, racer_id: int) -> list[float | None]:
        """A racer's output per second of a race, index 0 = second 1 (one Query of the racer's bucket).

        The bucket holds one part per delivered object (about 5 a race with Firehose's 60 s buffer,
        30 with ``make run``'s 10 s), each with the seconds of ~1/64 of the racers: one page at
        1,000 racers; further pages are followed.
        """
        params: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "#pk = :pk AND begins_with(#sk, :sk)",
            "ExpressionAttributeNames": {"#pk": PK, "#sk": SK},
            "ExpressionAttributeValues": {
                ":pk": {"S": items.race_pk(race_id)},
                ":sk": {"S": items.seconds_sk(items.seconds_bucket(racer_id)) + "#"},
            },
        }
        parts: list[dict[str, Any]] = []
        while True:
            with _store_errors():
                response = self._client.query(**params)
            parts.extend(response.get("Items", []))
            if "LastEvaluatedKey" not in response:
                return items.seconds_from_items(racer_id, parts)
            params["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def _get(self, key: dict[str, Any], *, consistent: bool = False) -> dict[str, Any] | None:
        with _store_errors():
            response = self._client.get_item(TableName=self._table, Key=key, ConsistentRead=consistent)
        return response.get("Item")

    def _query_page(
        self,
        index: str,
        key_attribute: str,
        key_value: str,
        limit: int,
        start_key: Mapping[str, Any] | None,
        convert: Callable[[Mapping[str, Any]], T],
        forward: bool,
        attributes: tuple[str, ...],
    ) -> Page[T]:
        if not 1 <= limit <= MAX_PAGE:
            raise ValueError(f"limit must be in 1..{MAX_PAGE}")
        params: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": index,
            "KeyConditionExpression": "#k = :k",
            "ExpressionAttributeNames": {"#k": key_attribute, **{f"#a{i}": name for i, name in enumerate(attributes)}},
            "ExpressionAttributeValues": {":k": {"S": key_value}},
            # Only what ``convert`` reads (names go through placeholders: "name" and "second" are reserved words).
            # LastEvaluatedKey still carries the keys.
            "ProjectionExpression": ", ".join(f"#a{i}" for i in range(len(attributes))),
            "ScanIndexForward": forward,
            "Limit": limit,
        }
        if start_key is not None:
            # The raw LastEvaluatedKey of a previous page. Signing it for a client (so that it cannot be
            # forged) is the caller's business: Django signs it once, with the site's secret.
            if not _is_key_of(start_key, index, key_attribute, key_value):
                raise InvalidCursor("start key is not a key of this query")
            params["ExclusiveStartKey"] = dict(start_key)
        try:
            with _store_errors():
                response = self._client.query(**params)
        except ClientError as exc:
            if start_key is not None and exc.response.get("Error", {}).get("Code") == "ValidationException":
                raise InvalidCursor("start key does not fit this index") from exc
            raise
        page_items = [convert(item) for item in response.get("Items", [])]
        return Page(items=page_items, last_key=response.get("LastEvaluatedKey"))

    # --- writes: the live item (aggregator) ----------------------------------------------

    def merge_live(
        self,
        race_id: int,
        class_id: int,
        pending_racers: Mapping[str, PendingRacer],
        *,
        now_ms: int | None = None,
        max_racers: int | None = None,
    ) -> MergeOutcome:
        """Merge a window's pending racers into the race's live item: read, merge, conditional put.

        The put is conditional on the version read, so a concurrent writer's racers are never
        lost: on a conflict we re-read and merge again. Seconds already counted are skipped,
        and when nothing changes nothing is written (a replay leaves the item untouched).
        A settled race's live item is frozen (``settled``); new racers beyond ``max_racers`` are
        left out (``rejected``); an item over ``LIVE_ITEM_LIMIT_BYTES``, or one DynamoDB refuses
        for its size, is not written (``too_large``). The caller dead-letters what was not written.
        A board this table object stored last is merged without the read, its put conditional on the
        version and ``updatedAt`` it wrote (``processors.table.boards``); refused, it is read as above.
        """
        if self._board_parts > 1:
            return self._merge_split(race_id, class_id, pending_racers, now_ms, max_racers)
        now = now_ms if now_ms is not None else int(time.time() * 1000)
        key = items.live_key(race_id)
        known = self._boards.trusted(_board_key(key))
        if known is not None:
            outcome = self._merge_known(key, race_id, None, pending_racers, known, now, max_racers)
            if outcome is not None:
                return outcome
        try:
            for attempt in attempts(MAX_CONFLICT_ATTEMPTS):
                with attempt:
                    return self._merge_live_once(
                        race_id, class_id, pending_racers, attempt.retry_state.attempt_number, now, max_racers
                    )
        except _SplitBoard:
            return self._merge_split(race_id, class_id, pending_racers, now_ms, max_racers)
        except GaveUp as exc:
            raise StoreUnavailable(
                f"live item of race {race_id}: still conflicting after {MAX_CONFLICT_ATTEMPTS} attempts"
            ) from exc
        raise AssertionError("unreachable: attempts() returns or raises")

    def _merge_live_once(
        self,
        race_id: int,
        class_id: int,
        pending_racers: Mapping[str, PendingRacer],
        attempt: int,
        now_ms: int,
        max_racers: int | None,
    ) -> MergeOutcome:
        """One read-merge-put of ``merge_live``; raises ``TryAgain`` when another writer came first."""
        key = items.live_key(race_id)
        current = self._get(key, consistent=True)
        if current:
            if items.is_live_settled(current):
                return MergeOutcome(written=False, attempts=attempt, racers=0, item_bytes=0, settled=True)
            if items.is_split_summary(current):
                raise _SplitBoard(race_id)  # started by a writer with more parts: follow the race's summary
            class_id = items.live_header(current)[1]
        return self._merge_read(key, race_id, class_id, None, pending_racers, current, attempt, now_ms, max_racers)

    def _merge_read(
        self,
        key: dict[str, Any],
        race_id: int,
        class_id: int,
        part: tuple[int, int] | None,
        pending_racers: Mapping[str, PendingRacer],
        current: dict[str, Any] | None,
        attempt: int,
        now_ms: int,
        max_racers: int | None,
    ) -> MergeOutcome:
        """Merge into a board as read (``current``, None when absent), put on its version; ``TryAgain`` on a conflict.

        A board read as this process last wrote it is not decoded again: the remembered one is used.
        """
        known: KnownBoard | None = None
        version = updated = 0
        if current:
            _race, _class, version, updated = items.live_header(current)
            known = self._boards.matching(_board_key(key), version, updated)
        if known is not None:
            return self._merge_board(key, race_id, part, pending_racers, known, current, attempt, now_ms, max_racers)
        totals = items.live_totals(current) if current else {}
        board = KnownBoard(version, updated, class_id, totals, {})
        return self._merge_board(key, race_id, part, pending_racers, board, current, attempt, now_ms, max_racers)

    def _merge_known(
        self,
        key: dict[str, Any],
        race_id: int,
        part: tuple[int, int] | None,
        pending_racers: Mapping[str, PendingRacer],
        known: KnownBoard,
        now_ms: int,
        max_racers: int | None,
    ) -> MergeOutcome | None:
        """Merge into the board this process wrote last, without reading it: one put conditional on that version.

        None when the put was refused (someone else wrote the board since): the caller merges from a read.
        """
        try:
            return self._merge_board(key, race_id, part, pending_racers, known, None, 1, now_ms, max_racers)
        except TryAgain:
            self._boards.refused(_board_key(key))
            return None

    def _merge_board(
        self,
        key: dict[str, Any],
        race_id: int,
        part: tuple[int, int] | None,
        pending_racers: Mapping[str, PendingRacer],
        board: KnownBoard,
        current: dict[str, Any] | None,
        attempt: int,
        now_ms: int,
        max_racers: int | None,
    ) -> MergeOutcome:
        """Apply a window to ``board`` and put it; ``TryAgain`` when someone else wrote the board first.

        ``board`` is the stored board: as read (``current``; no rows yet when just decoded) or, without
        ``current``, as this process remembers it (then the put is also conditional on its ``updatedAt``).
        Only a board whose put succeeded, or that nothing changed, goes back to the memory.
        """
        memory_key = _board_key(key)
        from_memory = current is None and board.version > 0  # (a board read as absent has version 0)
        totals = board.totals
        admitted, rejected = _admit(totals, pending_racers, max_racers)
        if not apply_pending(totals, admitted):
            # Nothing new for what is stored; whatever anyone stored since holds at least as much.
            if board.rows:  # a board just decoded has no rows yet: not worth keeping unchanged
                self._boards.remember(memory_key, board)
            return MergeOutcome(written=False, attempts=attempt, racers=len(totals), item_bytes=0, rejected=rejected)
        if board.rows:
            _encode_rows(board, admitted)
        else:
            board.rows = {racer_id: items.board_row(racer_id, total) for racer_id, total in totals.items()}
        item = items.live_item(
            race_id,
            board.class_id,
            totals,
            version=board.version + 1,
            updated_at_ms=now_ms,
            part=part,
            board=items.join_board(board.rows.values()),
        )
        outcome = self._put_live(
            item,
            current,
            board.version,
            attempt,
            len(totals),
            rejected,
            race_id,
            expected_updated_at=board.updated_at_ms if from_memory else None,
        )
        if outcome.written:
            board.version, board.updated_at_ms = board.version + 1, now_ms
            if from_memory:
                self._boards.confirmed(memory_key, board)
            else:
                self._boards.remember(memory_key, board)
        return outcome

    def _put_live(
        self,
        item: dict[str, Any],
        current: Mapping[str, Any] | None,
        version: int,
        attempt: int,
        racers: int,
        rejected: Mapping[str, PendingRacer],
        race_id: int,
        *,
        expected_updated_at: int | None = None,
    ) -> MergeOutcome:
        """The conditional put of a live item (or part): on the version read, or only if still absent.

        ``expected_updated_at``: put on the version and ``updatedAt`` this process wrote last (``current`` unused).
        """
        item_bytes = items.item_size(item)
        too_large = MergeOutcome(
            written=False,
            attempts=attempt,
            racers=racers,
            item_bytes=item_bytes,
            too_large=True,
            rejected=rejected,
        )
        if item_bytes > items.LIVE_ITEM_LIMIT_BYTES:
            # DynamoDB would reject it on every retry and block the shard for every other race
            # on it; the caller dead-letters the seconds and the standings stay at the last good item.
            return too_large
        condition: dict[str, Any]
        if expected_updated_at is not None:
            condition = {
                "ConditionExpression": "version = :v AND updatedAt = :u AND attribute_not_exists(settledAt)",
                "ExpressionAttributeValues": {":v": {"N": str(version)}, ":u": {"N": str(expected_updated_at)}},
            }
        elif current:
            condition = {
                "ConditionExpression": "version = :v AND attribute_not_exists(settledAt)",
                "ExpressionAttributeValues": {":v": {"N": str(version)}},
            }
        else:
            condition = {"ConditionExpression": "attribute_not_exists(pk)"}
        try:
            with _store_errors():
                self._client.put_item(TableName=self._table, Item=item, **condition)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            if error.get("Code") == "ValidationException" and _ITEM_SIZE_REFUSAL in str(error.get("Message")):
                return too_large  # our estimate let it through; the endpoint's own count did not
            if error.get("Code") != "ConditionalCheckFailedException":
                raise
            raise TryAgain(race_id) from exc
        return MergeOutcome(written=True, attempts=attempt, racers=racers, item_bytes=item_bytes, rejected=rejected)

    # --- writes: a split live board (``board_parts`` > 1) ------------------------------------

    def _merge_split(
        self,
        race_id: int,
        class_id: int,
        pending_racers: Mapping[str, PendingRacer],
        now_ms: int | None,
        max_racers: int | None,
    ) -> MergeOutcome:
        """``merge_live`` for a split board: the racers of each part merged into that part alone.

        One consistent BatchGetItem (summary and the parts this window touches), then one conditional
        PutItem per changed part, in parallel; a part whose version moved is read and merged again by
        itself. The summary is created once (conditional), by whoever writes first; its ``parts`` wins
        over this writer's. The race cap applies per part (``max_racers`` / parts, plus a quarter for
        the uneven spread of racers over parts).
        """
        now = now_ms if now_ms is not None else int(time.time() * 1000)
        remembered = self._boards.summary(race_id)
        if remembered is not None:
            # This writer stored every part of the window lately: merge into those, without a read.
            stored_class, parts = remembered
            groups = _by_part(race_id, pending_racers, parts)
            part_keys = {part: _board_key(items.live_part_key(race_id, part)) for part in groups}
            trusted = {part: self._boards.trusted(part_keys[part]) for part in groups}
            if all(board is not None for board in trusted.values()):
                return self._merge_parts(race_id, stored_class, parts, groups, {}, now, max_racers, trusted)
            for part, board in trusted.items():  # put back what was taken: merged from a read below
                if board is not None:
                    self._boards.remember(part_keys[part], board)
        parts = self._board_parts
        summary_key = items.live_key(race_id)
        while True:
            groups = _by_part(race_id, pending_racers, parts)
            keys = [summary_key, *(items.live_part_key(race_id, part) for part in groups)]
            found = self._batch_get(keys, consistent=True)
            summary = next((item for item in found if items.PART not in item), None)
            if summary is None:
                summary = self._create_summary(race_id, class_id, parts, now)
            if not items.is_split_summary(summary):  # a one-item board (started with parts=1): stays one item
                one_item = ResultsTable(self._client, self._table, boards=self._boards)
                return one_item.merge_live(race_id, class_id, pending_racers, now_ms=now_ms, max_racers=max_racers)
            if items.is_live_settled(summary):
                return MergeOutcome(written=False, attempts=1, racers=0, item_bytes=0, settled=True)
            if items.live_parts(summary) == parts:
                break
            parts = items.live_parts(summary)
        stored_class = int(summary["classId"]["N"])
        self._boards.remember_summary(race_id, stored_class, parts)
        current = {int(item[items.PART]["N"]): item for item in found if items.PART in item}
        return self._merge_parts(race_id, stored_class, parts, groups, current, now, max_racers, {})

    def _merge_parts(
        self,
        race_id: int,
        class_id: int,
        parts: int,
        groups: dict[int, dict[str, PendingRacer]],
        current: dict[int, dict[str, Any]],
        now: int,
        max_racers: int | None,
        trusted: dict[int, KnownBoard | None],
    ) -> MergeOutcome:
        """Merge each part's racers into it (in parallel): from memory (``trusted``) or from ``current`` as read."""
        cap = None if max_racers is None else -(-max_racers * 5 // (4 * parts))

        def merge(part: int) -> MergeOutcome:
            board = trusted.get(part)
            if board is not None:
                key = items.live_part_key(race_id, part)
                outcome = self._merge_known(key, race_id, (part, parts), groups[part], board, now, cap)
                if outcome is not None:
                    return outcome
                return self._merge_part(race_id, class_id, (part, parts), groups[part], None, now, cap, read=True)
            return self._merge_part(race_id, class_id, (part, parts), groups[part], current.get(part), now, cap)

        if len(groups) == 1:
            outcomes = {part: merge(part) for part in groups}
        else:
            with ThreadPoolExecutor(max_workers=min(len(groups), PARALLEL_PUTS)) as pool:
                outcomes = dict(zip(groups, pool.map(merge, groups), strict=True))
        rejected: dict[str, PendingRacer] = {}
        unwritten: dict[str, PendingRacer] = {}
        for part, outcome in outcomes.items():
            rejected.update(outcome.rejected)
            if outcome.too_large or outcome.settled:
                unwritten.update((key, value) for key, value in groups[part].items() if key not in outcome.rejected)
        return MergeOutcome(
            written=any(outcome.written for outcome in outcomes.values()),
            attempts=max(outcome.attempts for outcome in outcomes.values()),
            racers=sum(outcome.racers for outcome in outcomes.values()),
            item_bytes=max(outcome.item_bytes for outcome in outcomes.values()),
            too_large=any(outcome.too_large for outcome in outcomes.values()),
            settled=any(outcome.settled for outcome in outcomes.values()),
            rejected=rejected,
            unwritten=unwritten,
        )

    def _create_summary(self, race_id: int, class_id: int, parts: int, now_ms: int) -> dict[str, Any]:
        """The split board's summary, unless someone wrote the race's live item first (then theirs)."""
        item = items.live_summary_item(race_id, class_id, parts, updated_at_ms=now_ms)
        try:
            with _store_errors():
                self._client.put_item(TableName=self._table, Item=item, ConditionExpression="attribute_not_exists(pk)")
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            existing = self._get(items.live_key(race_id), consistent=True)
            if existing is None:
                raise StoreUnavailable(f"live item of race {race_id}: refused and then absent") from exc
            return existing
        return item

    def _merge_part(
        self,
        race_id: int,
        class_id: int,
        part: tuple[int, int],
        pending_racers: Mapping[str, PendingRacer],
        current: dict[str, Any] | None,
        now_ms: int,
        max_racers: int | None,
        *,
        read: bool = False,
    ) -> MergeOutcome:
        """Read-merge-put of one part (the first read done by the caller unless ``read``), retried on a conflict."""
        key = items.live_part_key(race_id, part[0])
        try:
            for attempt in attempts(MAX_CONFLICT_ATTEMPTS):
                with attempt:
                    number = attempt.retry_state.attempt_number
                    if number > 1 or read:
                        current = self._get(key, consistent=True)
                    if current and items.is_live_settled(current):
                        return MergeOutcome(written=False, attempts=number, racers=0, item_bytes=0, settled=True)
                    return self._merge_read(
                        key, race_id, class_id, part, pending_racers, current, number, now_ms, max_racers
                    )
        except GaveUp as exc:
            raise StoreUnavailable(
                f"live board part {part[0]} of race {race_id}: still conflicting after {MAX_CONFLICT_ATTEMPTS} attempts"
            ) from exc
        raise AssertionError("unreachable: attempts() returns or raises")

    # --- race identity (A0) and settlement -----------------------------------------------

    def race_identity(self, race_id: int) -> RaceIdentity | None:
        """A0: what the races app published about a race (and whether it has settled)."""
        item = self._get(items.identity_key(race_id))
        return items.race_identity_from_item(item) if item else None

    def race_identities(self, race_ids: Iterable[int]) -> dict[int, RaceIdentity]:
        """A0 for many races: BatchGetItem (100 keys per call). Unknown races are absent."""
        keys = [items.identity_key(race_id) for race_id in sorted(set(race_ids))]
        found = map(items.race_identity_from_item, self._batch_get(keys)) if keys else ()
        return {race.race_id: race for race in found}

    def put_race_identity(self, race: RaceIdentity, *, now_ms: int | None = None) -> bool:
        """Publish (create or change) a race's identity. False when the race has settled (left as it is)."""
        published = now_ms if now_ms is not None else int(time.time() * 1000)
        try:
            with _store_errors():
                self._client.update_item(
                    TableName=self._table, **items.identity_update(race, published_at_ms=published)
                )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            return False
        return True

    def advance_watermark(self, shard_id: str, arrival_ms: int, *, now_ms: int | None = None) -> bool:
        """Record that a shard's records up to ``arrival_ms`` are written out (only ever moves forward)."""
        now = now_ms if now_ms is not None else int(time.time() * 1000)
        try:
            with _store_errors():
                self._client.update_item(
                    TableName=self._table,
                    Key=items.watermark_key(shard_id),
                    UpdateExpression="SET arrivalMs = :a, updatedAt = :now",
                    ConditionExpression="attribute_not_exists(arrivalMs) OR arrivalMs < :a",
                    ExpressionAttributeValues={":a": {"N": str(arrival_ms)}, ":now": {"N": str(now)}},
                )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            return False
        return True

    def watermarks(self) -> list[Watermark]:
        """Every shard's watermark (one Query; a handful of items, one per shard ever seen)."""
        params: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": {":pk": {"S": items.PIPELINE_PK}, ":prefix": {"S": items.WATERMARK_PREFIX}},
            "ConsistentRead": True,
        }
        found: list[Watermark] = []
        while True:
            with _store_errors():
                response = self._client.query(**params)
            for item in response.get("Items", []):
                found.append(
                    Watermark(
                        shard_id=item["sk"]["S"].removeprefix(items.WATERMARK_PREFIX),
                        arrival_ms=int(item["arrivalMs"]["N"]),
                        updated_at_ms=int(item["updatedAt"]["N"]),
                    )
                )
            if "LastEvaluatedKey" not in response:
                return found
            params["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def races_due(self, up_to_ms: int, *, limit: int = 25) -> list[RaceIdentity]:
        """Races waiting to settle whose settle deadline is at or before ``up_to_ms`` (oldest first)."""
        with _store_errors():
            response = self._client.query(
                TableName=self._table,
                IndexName=GSI1,
                KeyConditionExpression="#k = :k AND #s <= :due",
                ExpressionAttributeNames={"#k": GSI1_PK, "#s": GSI1_SK},
                ExpressionAttributeValues={
                    ":k": {"S": items.SETTLE_PENDING_GSI1PK},
                    ":due": {"S": items.settle_sort_key(up_to_ms)},
                },
                Limit=limit,
            )
        return [items.race_identity_from_item(item) for item in response.get("Items", [])]

    def settle_race(self, race: RaceIdentity, *, now_ms: int | None = None) -> SettleOutcome:
        """Make a race's results final. Idempotent: a crash at any step is repaired by running it again.

        1. Freeze the live item (``settledAt``; an empty one if nobody rode): from now on the
           aggregator merges nothing into it, so what step 2 reads is final.
        2. Reconcile: every racer the live item marks finished gets its final result (and personal
           best) if finals has not written it, or wrote something else (e.g. it gave up on a write).
        3. Mark the identity settled and take it off the pending list: the API may now cache the
           results as immutable, and the aggregator dead-letters later records as ``late``.
        """
        now = now_ms if now_ms is not None else int(time.time() * 1000)
        finished = self._freeze_live(race, now)
        stored = {
            result.racer_id: result
            for result in map(
                items.final_result_from_item,
                self._batch_get([items.result_key(race.race_id, result.racer_id) for result in finished]),
            )
        }
        voided = self.voided_racer_ids(race.race_id) if finished else set()  # staff took these out: never back
        missing = [
            result for result in finished if stored.get(result.racer_id) != result and result.racer_id not in voided
        ]
        if missing:
            self.put_finals(missing)
        try:
            with _store_errors():
                self._client.update_item(
                    TableName=self._table,
                    Key=items.identity_key(race.race_id),
                    UpdateExpression=f"SET settledAt = :now REMOVE {GSI1_PK}, {GSI1_SK}",
                    ConditionExpression="attribute_exists(pk) AND attribute_not_exists(settledAt)",
                    ExpressionAttributeValues={":now": {"N": str(now)}},
                )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
        return SettleOutcome(race_id=race.race_id, finished=len(finished), reconciled=len(missing))

    def _freeze_live(self, race: RaceIdentity, now: int) -> list[FinalResult]:
        """Step 1 of ``settle_race``: freeze the live item (or every part of a split board); what it finished."""
        try:
            with _store_errors():
                update, values = _freeze_update(race, now)
                self._client.update_item(
                    TableName=self._table,
                    Key=items.live_key(race.race_id),
                    UpdateExpression=update,
                    # a split board's summary gets no board: its racers are in the parts
                    ConditionExpression="attribute_not_exists(settledAt) AND attribute_not_exists(parts)",
                    ExpressionAttributeValues=values,
                )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise  # already frozen by an earlier attempt, or split: go on
        live = self._get(items.live_key(race.race_id), consistent=True) or {}
        if items.is_split_summary(live):
            return self._freeze_parts(race, items.live_parts(live), now)
        return items.finished_results_of_live(live) if live else []

    def _freeze_parts(self, race: RaceIdentity, parts: int, now: int) -> list[FinalResult]:
        """Freeze a split board: the summary, then every part (an empty frozen part where nobody rode)."""
        frozen: list[tuple[dict[str, Any], str, dict[str, Any]]] = [
            (
                items.live_key(race.race_id),
                "SET settledAt = :now, updatedAt = :now, version = version + :one",
                {":now": {"N": str(now)}, ":one": {"N": "1"}},
            )
        ]
        for part in range(parts):
            frozen.append((items.live_part_key(race.race_id, part), *_freeze_update(race, now, (part, parts))))
        for key, update, values in frozen:
            try:
                with _store_errors():
                    self._client.update_item(
                        TableName=self._table,
                        Key=key,
                        UpdateExpression=update,
                        ConditionExpression="attribute_not_exists(settledAt)",
                        ExpressionAttributeValues=values,
                    )
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                    raise
        finished: list[FinalResult] = []
        for part_item in self._live_parts(race.race_id, parts, consistent=True):
            finished.extend(items.finished_results_of_live(part_item))
        return sorted(finished, key=lambda result: result.racer_id)

    # --- writes: final results and personal bests (finals) -------------------------------

    def put_finals(self, results: Iterable[FinalResult]) -> tuple[int, int]:
        """Write final results and the class personal bests they improve: (results written, bests improved).

        The current bests are read with BatchGetItem (100 keys a request); then every result (an
        idempotent put) and every best that beats the stored one (a put conditional on still beating
        it, so a concurrent better write wins and ties keep the old best) go out in TransactWriteItems
        of up to 100 actions. The end of a 1,000-racer race, every racer new to the class: 10 + 20
        requests, where a conditional PutItem per best made it 40 + 10 + 1,000. A transaction that
        DynamoDB cancels because a best's condition failed (a better best came meanwhile, or this is
        a replay) is sent again without that best; one cancelled for a conflict with another
        transaction is sent again as it was, with the one retry policy. With no best to write, the
        results go out with BatchWriteItem (a transactional write costs DynamoDB two write units).
        """
        results = list(results)
        return self._write_finals(results, [items.personal_best_of(result) for result in results])

    def put_final_results(self, results: Iterable[FinalResult]) -> int:
        """Write final results (idempotent puts, BatchWriteItem in 25s). Returns how many."""
        return self._write_finals(results, [])[0]

    def put_personal_bests(self, candidates: Iterable[PersonalBest]) -> int:
        """Store each candidate that beats the racer's current best in its class (``put_finals`` without
        results). Returns how many did."""
        return self._write_finals([], candidates)[1]

    def _write_finals(self, results: Iterable[FinalResult], candidates: Iterable[PersonalBest]) -> tuple[int, int]:
        latest = {(result.race_id, result.racer_id): result for result in results}  # one action per key
        result_puts = [{"Put": {"TableName": self._table, "Item": items.final_result_item(r)}} for r in latest.values()]
        best_of: dict[tuple[int, int], PersonalBest] = {}
        for best in candidates:
            key = (best.class_id, best.racer_id)
            if key not in best_of or best.score > best_of[key].score:
                best_of[key] = best
        current = {
            (best.class_id, best.racer_id): best.score
            for best in map(items.personal_best_from_item, self._batch_get([items.best_key(*k) for k in best_of]))
        }
        best_puts = []
        for key, best in best_of.items():
            if not is_better_best(best.score, current.get(key)):
                continue
            item = items.personal_best_item(best)
            best_puts.append(
                {
                    "Put": {
                        "TableName": self._table,
                        "Item": item,
                        "ConditionExpression": "attribute_not_exists(pk) OR score < :s",
                        "ExpressionAttributeValues": {":s": item["score"]},
                    }
                }
            )
        if not best_puts:
            self._batch_write([{"PutRequest": {"Item": action["Put"]["Item"]}} for action in result_puts])
            return len(result_puts), 0
        actions = result_puts + best_puts  # 100 to a transaction, whatever their kind: the fewest requests
        improved = 0
        for start in range(0, len(actions), TRANSACT_WRITE_MAX):
            improved += self._transact_puts(actions[start : start + TRANSACT_WRITE_MAX])
        return len(result_puts), improved

    def _transact_puts(self, actions: list[dict[str, Any]]) -> int:
        """One TransactWriteItems of puts, sent again without the conditional puts whose condition failed
        (and as it was after a conflict). Returns how many conditional puts were written."""
        pending = actions

        def send() -> None:
            nonlocal pending
            while pending:
                try:
                    with _store_errors():
                        self._client.transact_write_items(TransactItems=pending)
                    return
                except ClientError as exc:
                    if exc.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                        raise
                    reasons = [reason.get("Code") for reason in exc.response.get("CancellationReasons") or []]
                    if len(reasons) != len(pending):
                        raise
                    if any(code not in {"None", "ConditionalCheckFailed", "TransactionConflict"} for code in reasons):
                        raise StoreUnavailable(f"transaction cancelled: {reasons}") from exc
                    pending = [
                        action
                        for action, code in zip(pending, reasons, strict=True)
                        if code != "ConditionalCheckFailed"
                    ]
                    if "TransactionConflict" in reasons or "ConditionalCheckFailed" not in reasons:
                        raise TryAgain("transaction cancelled by a conflict") from exc
                    # only conditions failed: the rest goes again at once (each round drops at least one)

        _until_done(send, "TransactWriteItems cancelled")
        return sum(1 for action in pending if "ConditionExpression" in action["Put"])

    # --- staff corrections: void a result, replace a personal best ------------------------

    def final_result(self, race_id: int, racer_id: int) -> FinalResult | None:
        """A racer's final result of a race (one GetItem)."""
        item = self._get(items.result_key(race_id, racer_id), consistent=True)
        return items.final_result_from_item(item) if item else None

    def voided_result(self, race_id: int, racer_id: int) -> FinalResult | None:
        """The result staff voided (the void marker), or None (one GetItem)."""
        item = self._get(items.void_key(race_id, racer_id), consistent=True)
        return items.final_result_from_item(item) if item else None

    def voided_racer_ids(self, race_id: int) -> set[int]:
        """Racers whose result of the race staff voided (one Query of the race's partition)."""
        found: set[int] = set()
        params: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "#pk = :pk AND begins_with(#sk, :void)",
            "ExpressionAttributeNames": {"#pk": "pk", "#sk": "sk", "#racer": "racerId"},
            "ExpressionAttributeValues": {":pk": {"S": items.race_pk(race_id)}, ":void": {"S": items.VOID_SK_PREFIX}},
            "ProjectionExpression": "#racer",
            "ConsistentRead": True,
        }
        while True:
            with _store_errors():
                response = self._client.query(**params)
            found.update(items.voided_racer_id_from_item(item) for item in response.get("Items", []))
            if "LastEvaluatedKey" not in response:
                return found
            params["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def void_final_result(self, result: FinalResult, *, voided_at_ms: int) -> None:
        """Take a final result out of the race's results, leaving a void marker, in one transaction.

        Idempotent: voiding again finds no result to delete and rewrites the same marker.
        """
        with _store_errors():
            self._client.transact_write_items(
                TransactItems=[
                    {"Put": {"TableName": self._table, "Item": items.void_item(result, voided_at_ms=voided_at_ms)}},
                    {"Delete": {"TableName": self._table, "Key": items.result_key(result.race_id, result.racer_id)}},
                ]
            )

    def replace_personal_best(
        self, class_id: int, racer_id: int, *, expected: PersonalBest | None, best: PersonalBest | None
    ) -> bool:
        """Set (or, with ``best=None``, delete) a racer's best in a class, only if it is still ``expected``.

        Unlike ``put_personal_bests`` this may lower a best (a voided result). False when the stored
        best is no longer ``expected`` (finals wrote a better one meanwhile): read again and retry.
        """
        key = items.best_key(class_id, racer_id)
        if expected is None:
            condition: dict[str, Any] = {"ConditionExpression": "attribute_not_exists(pk)"}
        else:
            condition = {
                "ConditionExpression": "score = :s AND raceId = :r",
                "ExpressionAttributeValues": {
                    ":s": {"N": items.units_to_number(output_units(expected.score))},
                    ":r": {"N": str(expected.race_id)},
                },
            }
        try:
            with _store_errors():
                if best is None:
                    self._client.delete_item(TableName=self._table, Key=key, **condition)
                else:
                    self._client.put_item(TableName=self._table, Item=items.personal_best_item(best), **condition)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            return False
        return True

    # --- writes: per-second outputs (history) --------------------------------------------

    def put_race_seconds(
        self, race_id: int, outputs_by_racer: Mapping[int, Mapping[int, float]], *, source: str
    ) -> int:
        """Record racers' outputs per second in a race, as read from ``source`` (a delivered object).

        One item per bucket of racers and source (``items.race_seconds_items``), written with
        BatchWriteItem: a 1,000-racer object costs 3 requests, where an UpdateItem per racer cost
        1,000 (and each rewrote a growing item, both images of it in the table stream). Idempotent:
        the same source gives the same keys and values. A second delivered twice in two objects is in
        two parts, and readers keep the best per second. Returns the number of items written.
        """
        requests = [
            {"PutRequest": {"Item": item}}
            for item in items.race_seconds_items(race_id, items.seconds_part(source), outputs_by_racer)
        ]
        self._batch_write(requests, parallel=True)
        return len(requests)

    def put_racer_race_seconds(self, race_id: int, racer_id: int, outputs: Mapping[int, float], *, source: str) -> None:
        """``put_race_seconds`` for one racer."""
        self.put_race_seconds(race_id, {racer_id: outputs}, source=source)

    # --- batch helpers -------------------------------------------------------------------

    def _batch_write(self, requests: list[dict[str, Any]], *, parallel: bool = False) -> None:
        """Write ``requests`` 25 at a time (``parallel``: up to PARALLEL_PUTS batches at once)."""
        chunks = [requests[start : start + BATCH_WRITE_MAX] for start in range(0, len(requests), BATCH_WRITE_MAX)]
        if parallel and len(chunks) > 1:
            with ThreadPoolExecutor(max_workers=min(PARALLEL_PUTS, len(chunks))) as pool:
                list(pool.map(self._batch_write_chunk, chunks))  # re-raises the first failure here
            return
        for chunk in chunks:
            self._batch_write_chunk(chunk)

    def _batch_write_chunk(self, chunk: list[dict[str, Any]]) -> None:
        pending: dict[str, Any] = {self._table: chunk}

        def send() -> None:
            nonlocal pending
            with _store_errors():
                response = self._client.batch_write_item(RequestItems=pending)
            pending = response.get("UnprocessedItems") or {}
            if pending:
                raise TryAgain("unprocessed items")

        _until_done(send, "BatchWriteItem left items unprocessed")

    def _batch_get(self, keys: list[dict[str, Any]], *, consistent: bool = False) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for start in range(0, len(keys), BATCH_GET_MAX):
            request: dict[str, Any] = {"Keys": keys[start : start + BATCH_GET_MAX]}
            if consistent:
                request["ConsistentRead"] = True
            pending: dict[str, Any] = {self._table: request}

            def send() -> None:
                nonlocal pending
                with _store_errors():
                    response = self._client.batch_get_item(RequestItems=pending)
                found.extend(response.get("Responses", {}).get(self._table, []))
                pending = response.get("UnprocessedKeys") or {}
                if pending:
                    raise TryAgain("unprocessed keys")

            _until_done(send, "BatchGetItem left keys unprocessed")
        return found


_INDEX_KEYS = {GSI1: frozenset({PK, SK, GSI1_PK, GSI1_SK}), GSI2: frozenset({PK, SK, GSI2_PK, GSI2_SK})}


def _freeze_update(race: RaceIdentity, now: int, part: tuple[int, int] | None = None) -> tuple[str, dict[str, Any]]:
    """UpdateExpression and values that freeze a live item (or a part), creating an empty one if absent."""
    update = (
        "SET settledAt = :now, raceId = :race, classId = if_not_exists(classId, :class), "
        "updatedAt = :now, board = if_not_exists(board, :empty), version = if_not_exists(version, :zero) + :one"
    )
    values = {
        ":now": {"N": str(now)},
        ":race": {"N": str(race.race_id)},
        ":class": {"N": str(race.class_id)},
        ":empty": {"B": items.encode_board({})},
        ":zero": {"N": "0"},
        ":one": {"N": "1"},
    }
    if part is not None:
        update += ", part = :part, parts = :parts"
        values |= {":part": {"N": str(part[0])}, ":parts": {"N": str(part[1])}}
    return update, values


class _SplitBoard(Exception):
    """The race's live item is the summary of a split board: merge into its parts."""


def _board_key(key: Mapping[str, Any]) -> BoardKey:
    return key[PK]["S"], key[SK]["S"]


def _encode_rows(board: KnownBoard, racer_keys: Iterable[str]) -> None:
    """Encode again the rows of the racers a merge touched (the others' rows are as stored)."""
    totals, rows = board.totals, board.rows
    for racer_key in racer_keys:
        racer_id = int(racer_key)
        rows[racer_id] = items.board_row(racer_id, totals[racer_id])


def _by_part(race_id: int, pending: Mapping[str, PendingRacer], parts: int) -> dict[int, dict[str, PendingRacer]]:
    groups: dict[int, dict[str, PendingRacer]] = {}
    for key, racer in pending.items():
        groups.setdefault(items.board_part(race_id, int(key), parts), {})[key] = racer
    return groups


def _admit(
    totals: Mapping[int, RacerTotal], pending: Mapping[str, PendingRacer], max_racers: int | None
) -> tuple[Mapping[str, PendingRacer], dict[str, PendingRacer]]:
    """(admitted, rejected): racers already in the race always; new ones while there is room, lowest id first."""
    if max_racers is None:
        return pending, {}
    new = sorted((key for key in pending if int(key) not in totals), key=int)
    room = max(0, max_racers - len(totals))
    if len(new) <= room:
        return pending, {}
    refused = set(new[room:])
    admitted = {key: value for key, value in pending.items() if key not in refused}
    return admitted, {key: pending[key] for key in new[room:]}


def _is_key_of(start_key: Mapping[str, Any], index: str, key_attribute: str, key_value: str) -> bool:
    """A start key must be a key of this index (table and index keys, all strings) in the partition being
    queried: a key of another race or class, or of another shape, is refused before DynamoDB sees it."""
    return (
        isinstance(start_key, Mapping)
        and set(start_key) == _INDEX_KEYS[index]
        and all(
            isinstance(value, dict) and len(value) == 1 and isinstance(value.get("S"), str)
            for value in start_key.values()
        )
        and start_key[key_attribute] == {"S": key_value}
    )


@cached
def get_results_table() -> ResultsTable:
    """The handlers' table (client and name made once per process; ``processors.clients.clear()`` forgets it)."""
    config = get_config()
    return ResultsTable(aws_client("dynamodb"), config.table_name, board_parts=config.live_board_parts)


__all__ = (
    "MergeOutcome",
    "ResultsTable",
    "SettleOutcome",
    "Watermark",
    "get_results_table",
)
