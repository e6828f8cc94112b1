"""The ride WebSocket (``/ws/ride/``): the bike in the browser puts readings on the Kinesis stream.

A logged-in user whose account is linked to a racer sends one JSON message a second (the bike
message, camelCase as DESIGN.md defines it)::

    {"event": "update" | "final", "racerId": 1, "classId": 2, "cadence": 90, "resistance": 40,
     "deviceTimestamp": 1764172800000, "raceId": 42}

``raceId`` is optional: the race the ride is in, from the first ``ack``. The server fills in
what the browser must not choose: ``raceId`` (the class's current race; a reading naming a
race that is no longer current is refused with ``race_over``, so a late "final" never lands
in the next race), ``second`` (the race clock) and ``name`` (the racer's). It then validates the message with the
pipeline's own rules (``processors.domain.message.decode_reading``) and puts it on ``ALLEYCAT_STREAM``
with the partition key ``<raceId>:<racerId>`` (a race spreads over shards). Replies, one per
message, snake_case like everything the site serves:

    {"type": "ack", "race_id", "class_id", "second", "output", "event", "ends_at"}
    {"type": "error", "code": "wrong_racer" | "rate_limited" | "invalid" | "no_current_race"
                              | "race_over" | "not_json" | "stream_unavailable", "message": ...,
     ["reason", "detail"] (invalid), ["race_id"] (race_over)}

Close codes: 4401 not logged in, 4403 the account has no racer, 4429 too many sockets from one address.

Scale (issue 8): an async consumer; nothing blocks the event loop. The ORM runs on Django's database
thread (``database_sync_to_async``), Kinesis puts on a small thread pool of their own: readings of
every rider of this process are batched into ``PutRecords`` (``KinesisBatcher``: at most 100 ms or
``BATCH_RECORDS`` records), with short botocore timeouts and one retry of the records Kinesis refused;
a reading that still fails is reported to its rider only. The rate limit holds per racer over all of
their sockets and web processes (a token bucket in Redis).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from types import SimpleNamespace
from typing import Any, Literal

import boto3
import orjson
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.contrib.auth import get_user as auth_get_user
from django.utils import timezone
from redis.exceptions import RedisError

from processors.domain.message import BadRecord, decode_reading
from races.events import race_payload
from races.models import Race, Racer
from races.selectors import race_current_for_class

from .boards import get_redis
from .connections import LoopOnlyDispatch, per_event_loop

logger = logging.getLogger(__name__)

CLOSE_NOT_LOGGED_IN = 4401
CLOSE_NO_RACER = 4403

# One message a second is the contract; a little more (and a short burst) absorbs timer jitter
# and a reconnect, while a flood is refused message by message. Defaults of the settings
# ALLEYCAT_RIDE_RATE_PER_SECOND / ALLEYCAT_RIDE_BURST.
RATE_PER_SECOND = 1.5
BURST = 3

CLIENT_FIELDS = ("uuid", "event", "deviceTimestamp", "racerId", "classId", "cadence", "resistance")

MESSAGES = {
    "not_json": "Send one JSON object per message.",
    "wrong_racer": "You can only ride as your own racer.",
    "rate_limited": "Too many messages: one a second, please.",
    "no_current_race": "This class has no race running right now.",
    "invalid": "This reading is not valid.",
    "stream_unavailable": "The race server cannot take readings right now; try again shortly.",
    "race_over": "That race is over; start again to join the current race.",
}

# Short: a rider sends every second, so a put that takes longer is better reported than waited for.
# botocore's standard mode retries a throttled or failed call once more; the batcher retries records
# that PutRecords refused (ProvisionedThroughputExceeded) once. Worst case about 2 x (1 + 2) s.
_KINESIS_CONFIG = BotoConfig(
    retries={"mode": "standard", "max_attempts": 2}, connect_timeout=1, read_timeout=2, max_pool_connections=8
)
BATCH_RECORDS = 100
BATCH_DELAY_SECONDS = 0.1
PUT_THREADS = 4  # batches in flight at once: one slow put does not hold up the next batch
RECORD_RETRIES = 1
PUT_DEADLINE_SECONDS = 8.0


@lru_cache(maxsize=1)
def get_kinesis_client() -> Any:
    """Kinesis client; boto3 honours AWS_ENDPOINT_URL (moto, LocalStack) and the standard AWS variables."""
    return boto3.client("kinesis", config=_KINESIS_CONFIG)


def partition_key(race_id: int, racer_id: int) -> str:
    return f"{int(race_id)}:{int(racer_id)}"


class PutFailed(Exception):
    """A reading that did not reach the stream."""


def put_records(records: list[dict[str, Any]]) -> dict[int, str]:
    """PutRecords (blocking; runs on the put threads). Returns the indexes of records that failed, with why."""
    client = get_kinesis_client()
    todo = list(range(len(records)))
    failed: dict[int, str] = {}
    for attempt in range(RECORD_RETRIES + 1):
        try:
            response = client.put_records(StreamName=settings.ALLEYCAT_STREAM, Records=[records[i] for i in todo])
        except (BotoCoreError, ClientError) as exc:
            return {i: f"{type(exc).__name__}: {exc}"[:300] for i in todo}
        failed = {}
        for index, result in zip(todo, response["Records"], strict=True):
            if result.get("ErrorCode"):
                failed[index] = f"{result['ErrorCode']}: {result.get('ErrorMessage', '')}"[:300]
        if not failed or attempt == RECORD_RETRIES:
            break
        todo = sorted(failed)
        time.sleep(0.05)
    return failed


class KinesisBatcher:
    """Readings of every rider of this process, put in batches; ``put`` returns once its batch is on the stream.

    Each batch is put on one of ``PUT_THREADS`` threads of its own (never Django's database thread, never
    the event loop), so a slow put delays only the readings in its batch.
    """

    def __init__(self) -> None:
        self.pending: list[tuple[dict[str, Any], asyncio.Future]] = []
        self.timer: asyncio.TimerHandle | None = None
        self.executor = ThreadPoolExecutor(PUT_THREADS, thread_name_prefix="kinesis-put")
        self.batches = 0

    async def put(self, data: bytes, key: str) -> None:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self.pending.append(({"Data": data, "PartitionKey": key}, future))
        if len(self.pending) >= BATCH_RECORDS:
            self.flush()
        elif self.timer is None:
            self.timer = loop.call_later(BATCH_DELAY_SECONDS, self.flush)
        try:
            await asyncio.wait_for(asyncio.shield(future), PUT_DEADLINE_SECONDS)
        except TimeoutError:
            raise PutFailed(f"no answer from the stream within {PUT_DEADLINE_SECONDS} s") from None

    def flush(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        batch, self.pending = self.pending, []
        if batch:
            asyncio.ensure_future(self._put(batch))

    async def _put(self, batch: list[tuple[dict[str, Any], asyncio.Future]]) -> None:
        self.batches += 1
        loop = asyncio.get_running_loop()
        try:
            failed = await loop.run_in_executor(self.executor, put_records, [record for record, _ in batch])
        except Exception as exc:  # noqa: BLE001 - whatever broke, each rider is told, none is left waiting
            failed = {i: f"{type(exc).__name__}: {exc}"[:300] for i in range(len(batch))}
        for index, (_, future) in enumerate(batch):
            if future.done():
                continue
            if index in failed:
                future.set_exception(PutFailed(failed[index]))
            else:
                future.set_result(None)


get_batcher = per_event_loop(KinesisBatcher)


# A token bucket per racer in Redis, shared by all of the racer's sockets in every web process.
# KEYS[1] the bucket; ARGV rate (tokens/s), burst, now (ms), ttl (ms). Returns 1 if a token was taken.
_RATE_SCRIPT = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  tokens = burst
  ts = now
end
if now > ts then
  tokens = math.min(burst, tokens + (now - ts) * rate / 1000)
  ts = now
end
local allowed = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(ts))
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return allowed
"""
_rate_scripts: dict[asyncio.AbstractEventLoop, Any] = {}


def rate_key(racer_id: int) -> str:
    return f"alleycat:ride:rate:{int(racer_id)}"


async def racer_rate_take(racer_id: int, *, rate: float, burst: int) -> bool:
    """Take one token of the racer's bucket in Redis; raises RedisError/OSError if Redis cannot be reached."""
    loop = asyncio.get_running_loop()
    script = _rate_scripts.get(loop)
    if script is None:
        script = _rate_scripts[loop] = get_redis().register_script(_RATE_SCRIPT)
    ttl_ms = int(1000 * (burst / rate + 10))
    allowed = await script(keys=[rate_key(racer_id)], args=[rate, burst, int(time.time() * 1000), ttl_ms])
    return allowed == 1


class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` saved up; each message takes one."""

    def __init__(self, rate: float, burst: int, clock=time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self.tokens = float(burst)
        self.updated = clock()

    def take(self) -> bool:
        now = self.clock()
        self.tokens = min(float(self.burst), self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


@dataclass
class _CurrentRace:
    race_id: int
    starts_at: datetime
    ends_at: datetime
    payload: dict[str, Any]


def race_second(*, starts_at: datetime, now: datetime) -> int:
    """The second of the race at ``now``: 1 during the first second."""
    return int((now - starts_at).total_seconds()) + 1


def _racer_of_session(session: Any) -> Racer | Literal[False] | None:
    """The session's racer in one trip to the database thread: None not logged in, False no racer."""
    if session is None:
        return None
    user = auth_get_user(SimpleNamespace(session=session))
    if not user.is_authenticated:
        return None
    return Racer.objects.filter(user_id=user.pk).only("racer_id", "name").first() or False


class RideConsumer(LoopOnlyDispatch, AsyncWebsocketConsumer):
    """Async: ORM on the database thread, puts on the batcher's threads; the event loop never waits on I/O."""

    async def connect(self) -> None:
        # Accept first, then look the rider up: the handshake never waits for the database (a storm of
        # riders connecting at once would otherwise outlast daphne's handshake timeout), and the browser
        # sees the close code either way. Messages before the lookup completes wait in order.
        await self.accept()
        racer = await database_sync_to_async(_racer_of_session)(self.scope.get("session"))
        if racer is None:
            await self.close(code=CLOSE_NOT_LOGGED_IN)
            return
        if racer is False:
            await self.close(code=CLOSE_NO_RACER)
            return
        self.racer_id = racer.racer_id
        self.racer_name = racer.name
        self.rate = float(getattr(settings, "ALLEYCAT_RIDE_RATE_PER_SECOND", RATE_PER_SECOND))
        self.burst = int(getattr(settings, "ALLEYCAT_RIDE_BURST", BURST))
        # Used only while Redis cannot be reached: then the limit holds per socket.
        self.bucket = TokenBucket(self.rate, self.burst)
        self.races: dict[int, _CurrentRace] = {}

    async def _allowed(self) -> bool:
        try:
            return await racer_rate_take(self.racer_id, rate=self.rate, burst=self.burst)
        except (RedisError, OSError) as exc:
            logger.warning("Ride rate limit falls back to this socket (Redis: %s)", exc)
            return self.bucket.take()

    racer_id: int | None = None

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.racer_id is None:
            return  # closed at connect (not logged in, no racer): nothing it sends counts
        if not await self._allowed():
            await self._error("rate_limited")
            return
        try:
            content = json.loads(text_data if text_data is not None else bytes_data or b"")
        except (ValueError, UnicodeDecodeError):
            await self._error("not_json")
            return
        if not isinstance(content, dict):
            await self._error("not_json")
            return
        await self.handle_reading(content)

    async def handle_reading(self, content: dict[str, Any]) -> None:
        racer_id = content.get("racerId")
        if type(racer_id) is int and racer_id != self.racer_id:
            await self._error("wrong_racer")
            return
        now = timezone.now()
        message = {field: content[field] for field in CLIENT_FIELDS if field in content}
        message.setdefault("deviceTimestamp", int(now.timestamp() * 1000))
        message["name"] = self.racer_name
        class_id = content.get("classId")
        race = await self._current_race(class_id, now) if type(class_id) is int and class_id >= 1 else None
        # Without a valid class the placeholders let the pipeline's rules name what is wrong.
        message["raceId"] = race.race_id if race else 0
        message["second"] = race_second(starts_at=race.starts_at, now=now) if race else 1
        data = orjson.dumps(message)
        reading = decode_reading(data)
        if isinstance(reading, BadRecord):
            await self._error("invalid", reason=str(reading.reason), detail=reading.detail)
            return
        if reading.racer_id != self.racer_id:  # racerId missing would have failed above
            await self._error("wrong_racer")
            return
        riding_in = content.get("raceId")
        if type(riding_in) is int and riding_in > 0 and (race is None or riding_in != race.race_id):
            # A reading (a late "final" above all) of a race that has ended never lands in the next one.
            await self._error("race_over", race_id=riding_in)
            return
        if race is None:
            await self._error("no_current_race")
            return
        try:
            await get_batcher().put(data, partition_key(race.race_id, self.racer_id))
        except PutFailed as exc:
            logger.warning("Ride reading of racer %s not put on the stream: %s", self.racer_id, exc)
            await self._error("stream_unavailable")
            return
        await self.send(
            text_data=json.dumps(
                {
                    "type": "ack",
                    "race_id": reading.race_id,
                    "class_id": reading.class_id,
                    "second": reading.second,
                    "output": reading.output,
                    "event": reading.event,
                    "ends_at": race.payload["ends_at"],
                }
            )
        )

    async def _current_race(self, class_id: int, now: datetime) -> _CurrentRace | None:
        """The class's race running now; cached until it ends, so a rider costs one query a race."""
        cached = self.races.get(class_id)
        if cached and cached.starts_at <= now < cached.ends_at:
            return cached
        race: Race | None = await database_sync_to_async(race_current_for_class)(class_id=class_id, now=now)
        if race is None:
            self.races.pop(class_id, None)
            return None
        current = _CurrentRace(race.pk, race.starts_at, race.ends_at, race_payload(race))
        self.races[class_id] = current
        return current

    async def _error(self, code: str, **extra: Any) -> None:
        await self.send(text_data=json.dumps({"type": "error", "code": code, "message": MESSAGES[code], **extra}))
