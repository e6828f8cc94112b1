"""``ResultsTable``: every read and write of the table (GetItem, Query, BatchGet, writes; never Scan)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, TypeVar

import boto3
import orjson
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError

from processors.config import get_config
from processors.domain import RacerTotal, apply_pending, is_better_best, output_units
from processors.table import items
from processors.table.models import (
    FinalResult,
    InvalidCursor,
    LiveStandings,
    Page,
    PersonalBest,
    StoreUnavailable,
)
from processors.table.schema import GSI1, GSI1_PK, GSI2, GSI2_PK

T = TypeVar("T")

MAX_PAGE = 1000
BATCH_WRITE_MAX = 25
BATCH_GET_MAX = 100
MAX_BATCH_ATTEMPTS = 8
MAX_CONFLICT_ATTEMPTS = 10
PARALLEL_PUTS = 16
SECONDS_PER_UPDATE = 100  # keeps one UpdateExpression well under DynamoDB's 4 KB expression limit

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


def _backoff(attempt: int) -> None:
    # Full jitter, capped: 25 ms, 50 ms, ... up to 1 s.
    time.sleep(random.uniform(0, min(1.0, 0.025 * 2**attempt)))


@dataclass(frozen=True, slots=True)
class MergeOutcome:
    written: bool
    attempts: int
    racers: int
    item_bytes: int
    too_large: bool = False


class ResultsTable:
    """The table behind a small API. ``client`` is a boto3 DynamoDB low-level client."""

    def __init__(self, client: Any, table_name: str, cursor_secret: bytes) -> None:
        self._client = client
        self._table = table_name
        self._secret = cursor_secret

    @property
    def table_name(self) -> str:
        return self._table

    # --- reads ---------------------------------------------------------------------------

    def live_standings(self, race_id: int) -> LiveStandings | None:
        """A1: the race's live standings (one GetItem), ranked; ``None`` before any reading."""
        item = self._get(items.live_key(race_id))
        return items.live_standings_from_item(item) if item else None

    def race_results(self, race_id: int, *, limit: int = 100, cursor: str | None = None) -> Page[FinalResult]:
        """A2: final results of a race, score desc (ties: racer id asc)."""
        return self._query_page(
            GSI1,
            GSI1_PK,
            items.race_results_gsi1pk(race_id),
            limit,
            cursor,
            items.final_result_from_item,
            False,
            FINAL_RESULT_ATTRIBUTES,
        )

    def class_leaderboard(self, class_id: int, *, limit: int = 100, cursor: str | None = None) -> Page[PersonalBest]:
        """A3: each racer's best final score in the class, desc (ties: racer id asc)."""
        return self._query_page(
            GSI1,
            GSI1_PK,
            items.class_bests_gsi1pk(class_id),
            limit,
            cursor,
            items.personal_best_from_item,
            False,
            PERSONAL_BEST_ATTRIBUTES,
        )

    def racer_results(self, racer_id: int, *, limit: int = 100, cursor: str | None = None) -> Page[FinalResult]:
        """A4: a racer's final results across races, newest race first."""
        return self._query_page(
            GSI2,
            GSI2_PK,
            items.racer_gsi2pk(racer_id),
            limit,
            cursor,
            items.final_result_from_item,
            False,
            FINAL_RESULT_ATTRIBUTES,
        )

    def personal_best(self, class_id: int, racer_id: int) -> PersonalBest | None:
        """A5: a racer's personal best in a class (one GetItem)."""
        item = self._get(items.best_key(class_id, racer_id))
        return items.personal_best_from_item(item) if item else None

    def racer_race_seconds(self, race_id: int, racer_id: int) -> list[float | None]:
        """A racer's output per second of a race, index 0 = second 1 (one GetItem)."""
        return items.seconds_from_item(self._get(items.seconds_key(race_id, racer_id)))

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
        cursor: str | None,
        convert: Callable[[Mapping[str, Any]], T],
        forward: bool,
        attributes: tuple[str, ...],
    ) -> Page[T]:
        if not 1 <= limit <= MAX_PAGE:
            raise ValueError(f"limit must be in 1..{MAX_PAGE}")
        scope = f"{index}|{key_value}"
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
        if cursor is not None:
            params["ExclusiveStartKey"] = self._decode_cursor(cursor, scope)
        with _store_errors():
            response = self._client.query(**params)
        page_items = [convert(item) for item in response.get("Items", [])]
        last_key = response.get("LastEvaluatedKey")
        return Page(items=page_items, next_cursor=self._encode_cursor(last_key, scope) if last_key else None)

    # --- cursors: HMAC-signed, bound to the query they came from -------------------------

    def _signature(self, scope: str, payload: bytes) -> bytes:
        return hmac.new(self._secret, scope.encode() + b"\x00" + payload, hashlib.sha256).digest()[:16]

    def _encode_cursor(self, last_key: Mapping[str, Any], scope: str) -> str:
        payload = orjson.dumps(last_key, option=orjson.OPT_SORT_KEYS)
        signature = self._signature(scope, payload)
        return f"{_b64(payload)}.{_b64(signature)}"

    def _decode_cursor(self, cursor: str, scope: str) -> dict[str, Any]:
        try:
            payload_text, signature_text = cursor.split(".")
            payload = _unb64(payload_text)
            signature = _unb64(signature_text)
        except (ValueError, TypeError) as exc:
            raise InvalidCursor("malformed cursor") from exc
        if not hmac.compare_digest(signature, self._signature(scope, payload)):
            raise InvalidCursor("cursor was not issued for this query")
        try:
            last_key = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:  # only reachable with a leaked secret
            raise InvalidCursor("corrupt cursor") from exc
        if not isinstance(last_key, dict):
            raise InvalidCursor("corrupt cursor")
        return last_key

    # --- writes: the live item (aggregator) ----------------------------------------------

    def merge_live(
        self,
        race_id: int,
        class_id: int,
        pending_racers: Mapping[str, Mapping[str, Any]],
        *,
        now_ms: int | None = None,
    ) -> MergeOutcome:
        """Merge a window's pending racers into the race's live item: read, merge, conditional put.

        The put is conditional on the version read, so a concurrent writer's racers are never
        lost: on a conflict we re-read and merge again. Seconds already counted are skipped,
        and when nothing changes nothing is written (a replay leaves the item untouched).
        """
        for attempt in range(1, MAX_CONFLICT_ATTEMPTS + 1):
            current = self._get(items.live_key(race_id), consistent=True)
            if current:
                _race, stored_class, version, _updated = items.live_header(current)
                totals: dict[int, RacerTotal] = items.live_totals(current)
            else:
                stored_class, version, totals = class_id, 0, {}
            if not apply_pending(totals, pending_racers):
                return MergeOutcome(written=False, attempts=attempt, racers=len(totals), item_bytes=0)
            item = items.live_item(
                race_id,
                min(stored_class, class_id),
                totals,
                version=version + 1,
                updated_at_ms=now_ms if now_ms is not None else int(time.time() * 1000),
            )
            item_bytes = items.item_size(item)
            if item_bytes > items.MAX_ITEM_BYTES:
                # DynamoDB would reject it on every retry and block the shard for every other race
                # on it; the caller reports it and this race's standings stay at the last good item.
                return MergeOutcome(
                    written=False, attempts=attempt, racers=len(totals), item_bytes=item_bytes, too_large=True
                )
            condition: dict[str, Any]
            if current:
                condition = {
                    "ConditionExpression": "version = :v",
                    "ExpressionAttributeValues": {":v": {"N": str(version)}},
                }
            else:
                condition = {"ConditionExpression": "attribute_not_exists(pk)"}
            try:
                with _store_errors():
                    self._client.put_item(TableName=self._table, Item=item, **condition)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                    raise
                _backoff(attempt - 1)
                continue
            return MergeOutcome(written=True, attempts=attempt, racers=len(totals), item_bytes=item_bytes)
        raise StoreUnavailable(f"live item of race {race_id}: still conflicting after {MAX_CONFLICT_ATTEMPTS} attempts")

    # --- writes: final results and personal bests (finals) -------------------------------

    def put_final_results(self, results: Iterable[FinalResult]) -> int:
        """Write final results (idempotent puts, BatchWriteItem in 25s). Returns how many."""
        # One request per key: BatchWriteItem rejects a batch that names a key twice (last one wins).
        latest = {(result.race_id, result.racer_id): result for result in results}
        requests = [{"PutRequest": {"Item": items.final_result_item(result)}} for result in latest.values()]
        self._batch_write(requests)
        return len(requests)

    def put_personal_bests(self, candidates: Iterable[PersonalBest]) -> int:
        """Store each candidate that beats the racer's current best in its class. Returns how many did.

        Reads the current bests with BatchGetItem, then writes only the better ones, each
        conditional on still being better (a concurrent better write wins; ties keep the old best).
        """
        best_of: dict[tuple[int, int], PersonalBest] = {}
        for candidate in candidates:
            key = (candidate.class_id, candidate.racer_id)
            if key not in best_of or candidate.score > best_of[key].score:
                best_of[key] = candidate
        if not best_of:
            return 0
        current = {
            (best.class_id, best.racer_id): best.score
            for best in map(items.personal_best_from_item, self._batch_get([items.best_key(*k) for k in best_of]))
        }
        better = [item for key, item in best_of.items() if is_better_best(item.score, current.get(key))]
        if len(better) <= 1:
            return sum(map(self._put_best_if_greater, better))
        # The end of a race finishes hundreds of racers in one stream record; conditional puts
        # cannot be batched, so they go out in parallel (the client is thread-safe).
        with ThreadPoolExecutor(max_workers=min(PARALLEL_PUTS, len(better))) as pool:
            return sum(pool.map(self._put_best_if_greater, better))

    def _put_best_if_greater(self, best: PersonalBest) -> bool:
        item = items.personal_best_item(best)
        try:
            with _store_errors():
                self._client.put_item(
                    TableName=self._table,
                    Item=item,
                    ConditionExpression="attribute_not_exists(pk) OR score < :s",
                    ExpressionAttributeValues={":s": item["score"]},
                )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            return False
        return True

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

    def put_racer_race_seconds(self, race_id: int, racer_id: int, outputs: Mapping[int, float]) -> None:
        """Record a racer's output per second in a race; setting a second again is idempotent.

        One UpdateItem per 100 seconds (no read): a Firehose object carries about a minute of
        a racer's seconds, so this is one call per racer per object.
        """
        seconds = sorted(outputs.items())
        for start in range(0, len(seconds), SECONDS_PER_UPDATE):
            chunk = seconds[start : start + SECONDS_PER_UPDATE]
            names = {"#race": "raceId", "#racer": "racerId"}
            values: dict[str, Any] = {":race": {"N": str(race_id)}, ":racer": {"N": str(racer_id)}}
            assignments = ["#race = :race", "#racer = :racer"]
            for index, (second, output) in enumerate(chunk):
                names[f"#s{index}"] = items.second_attribute(second)
                values[f":s{index}"] = {"N": items.units_to_number(round(output * 10_000))}
                assignments.append(f"#s{index} = :s{index}")
            with _store_errors():
                self._client.update_item(
                    TableName=self._table,
                    Key=items.seconds_key(race_id, racer_id),
                    UpdateExpression="SET " + ", ".join(assignments),
                    ExpressionAttributeNames=names,
                    ExpressionAttributeValues=values,
                )

    def put_race_seconds(self, race_id: int, outputs_by_racer: Mapping[int, Mapping[int, float]]) -> None:
        """``put_racer_race_seconds`` for many racers of a race, in parallel (16 at a time)."""
        work = [(racer_id, outputs) for racer_id, outputs in outputs_by_racer.items() if outputs]
        if len(work) <= 1:
            for racer_id, outputs in work:
                self.put_racer_race_seconds(race_id, racer_id, outputs)
            return
        with ThreadPoolExecutor(max_workers=min(PARALLEL_PUTS, len(work))) as pool:
            # list() re-raises the first failure (StoreUnavailable) in the caller
            list(pool.map(lambda job: self.put_racer_race_seconds(race_id, *job), work))

    # --- batch helpers -------------------------------------------------------------------

    def _batch_write(self, requests: list[dict[str, Any]]) -> None:
        for start in range(0, len(requests), BATCH_WRITE_MAX):
            pending = {self._table: requests[start : start + BATCH_WRITE_MAX]}
            for attempt in range(MAX_BATCH_ATTEMPTS):
                with _store_errors():
                    response = self._client.batch_write_item(RequestItems=pending)
                pending = response.get("UnprocessedItems") or {}
                if not pending:
                    break
                _backoff(attempt)
            else:
                raise StoreUnavailable(f"BatchWriteItem left items unprocessed after {MAX_BATCH_ATTEMPTS} attempts")

    def _batch_get(self, keys: list[dict[str, Any]]) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for start in range(0, len(keys), BATCH_GET_MAX):
            pending: dict[str, Any] = {self._table: {"Keys": keys[start : start + BATCH_GET_MAX]}}
            for attempt in range(MAX_BATCH_ATTEMPTS):
                with _store_errors():
                    response = self._client.batch_get_item(RequestItems=pending)
                found.extend(response.get("Responses", {}).get(self._table, []))
                pending = response.get("UnprocessedKeys") or {}
                if not pending:
                    break
                _backoff(attempt)
            else:
                raise StoreUnavailable(f"BatchGetItem left keys unprocessed after {MAX_BATCH_ATTEMPTS} attempts")
        return found


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


BOTO_CONFIG = BotoConfig(
    retries={"mode": "standard", "max_attempts": 3},
    connect_timeout=2,
    read_timeout=5,
    max_pool_connections=PARALLEL_PUTS,
    # Every request is built here from typed values; botocore's client-side check of a
    # 1,000-racer live item costs ~17 ms of CPU per write and would catch nothing.
    parameter_validation=False,
)


@lru_cache(maxsize=1)
def get_dynamodb_client() -> Any:
    """DynamoDB client; honours AWS_ENDPOINT_URL (moto, LocalStack) and the standard AWS variables."""
    return boto3.client("dynamodb", config=BOTO_CONFIG)


@lru_cache(maxsize=1)
def get_results_table() -> ResultsTable:
    config = get_config()
    return ResultsTable(get_dynamodb_client(), config.table_name, config.cursor_secret)


__all__ = ("MergeOutcome", "ResultsTable", "get_dynamodb_client", "get_results_table")
