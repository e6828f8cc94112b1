"""The ride WebSocket (``/ws/ride/``): the bike in the browser puts readings on the Kinesis stream.

A logged-in user whose account is linked to a racer sends one JSON message a second::

    {"event": "update" | "final", "racerId": 1, "classId": 2, "cadence": 90, "resistance": 40,
     "deviceTimestamp": 1764172800000, "raceId": 42}

``raceId`` is optional: the race the ride is in, from the first ``ack``. The server fills in
what the browser must not choose: ``raceId`` (the class's current race; a reading naming a
race that is no longer current is refused with ``race_over``, so a late "final" never lands
in the next race), ``second`` (the race clock) and ``name`` (the racer's). It then validates the message with the
pipeline's own rules (``processors.domain.decode_reading``) and puts it on ``ALLEYCAT_STREAM``
with the race id as partition key. Replies, one per message:

    {"type": "ack", "raceId", "classId", "second", "output", "event", "endsAt"}
    {"type": "error", "code": "wrong_racer" | "rate_limited" | "invalid" | "no_current_race"
                              | "race_over" | "not_json" | "stream_unavailable", "message": ..., ["reason", "detail"]}

Close codes: 4401 not logged in, 4403 the account has no racer.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

import boto3
import orjson
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError
from channels.generic.websocket import WebsocketConsumer
from django.conf import settings
from django.utils import timezone

from processors.domain import BadRecord, decode_reading
from races.events import race_payload
from races.models import Race, Racer
from races.selectors import race_current_for_class

logger = logging.getLogger(__name__)

CLOSE_NOT_LOGGED_IN = 4401
CLOSE_NO_RACER = 4403

# One message a second is the contract; a little more (and a short burst) absorbs timer jitter
# and a reconnect, while a flood is refused message by message.
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

_KINESIS_CONFIG = BotoConfig(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=2, read_timeout=5)


@lru_cache(maxsize=1)
def get_kinesis_client() -> Any:
    """Kinesis client; boto3 honours AWS_ENDPOINT_URL (moto, LocalStack) and the standard AWS variables."""
    return boto3.client("kinesis", config=_KINESIS_CONFIG)


def reading_put(*, data: bytes, race_id: int) -> None:
    """Put one bike message on the stream, partitioned by race (as bikes and the simulator do)."""
    get_kinesis_client().put_record(StreamName=settings.ALLEYCAT_STREAM, Data=data, PartitionKey=str(race_id))


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


class RideConsumer(WebsocketConsumer):
    """Sync consumer (Channels' default): ORM and boto3 calls block, so each runs in a worker thread."""

    def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            self.accept()  # accept first so the browser sees the close code
            self.close(code=CLOSE_NOT_LOGGED_IN)
            return
        racer = Racer.objects.filter(user_id=user.pk).only("racer_id", "name").first()
        if racer is None:
            self.accept()
            self.close(code=CLOSE_NO_RACER)
            return
        self.racer_id = racer.racer_id
        self.racer_name = racer.name
        self.bucket = TokenBucket(RATE_PER_SECOND, BURST)
        self.races: dict[int, _CurrentRace] = {}
        self.accept()

    def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if not self.bucket.take():
            self._error("rate_limited")
            return
        try:
            content = json.loads(text_data if text_data is not None else bytes_data or b"")
        except (ValueError, UnicodeDecodeError):
            self._error("not_json")
            return
        if not isinstance(content, dict):
            self._error("not_json")
            return
        self.handle_reading(content)

    def handle_reading(self, content: dict[str, Any]) -> None:
        racer_id = content.get("racerId")
        if type(racer_id) is int and racer_id != self.racer_id:
            self._error("wrong_racer")
            return
        now = timezone.now()
        message = {field: content[field] for field in CLIENT_FIELDS if field in content}
        message.setdefault("deviceTimestamp", int(now.timestamp() * 1000))
        message["name"] = self.racer_name
        class_id = content.get("classId")
        race = self._current_race(class_id, now) if type(class_id) is int and class_id >= 1 else None
        # Without a valid class the placeholders let the pipeline's rules name what is wrong.
        message["raceId"] = race.race_id if race else 0
        message["second"] = race_second(starts_at=race.starts_at, now=now) if race else 1
        data = orjson.dumps(message)
        reading = decode_reading(data)
        if isinstance(reading, BadRecord):
            self._error("invalid", reason=str(reading.reason), detail=reading.detail)
            return
        if reading.racer_id != self.racer_id:  # racerId missing would have failed above
            self._error("wrong_racer")
            return
        riding_in = content.get("raceId")
        if type(riding_in) is int and riding_in > 0 and (race is None or riding_in != race.race_id):
            # A reading (a late "final" above all) of a race that has ended never lands in the next one.
            self._error("race_over", raceId=riding_in)
            return
        if race is None:
            self._error("no_current_race")
            return
        try:
            reading_put(data=data, race_id=race.race_id)
        except (BotoCoreError, ClientError) as exc:
            logger.warning("Ride reading of racer %s not put on the stream: %s", self.racer_id, exc)
            self._error("stream_unavailable")
            return
        self.send(
            text_data=json.dumps(
                {
                    "type": "ack",
                    "raceId": reading.race_id,
                    "classId": reading.class_id,
                    "second": reading.second,
                    "output": reading.output,
                    "event": reading.event,
                    "endsAt": race.payload["endsAt"],
                }
            )
        )

    def _current_race(self, class_id: int, now: datetime) -> _CurrentRace | None:
        """The class's race running now; cached until it ends, so a rider costs one query a race."""
        cached = self.races.get(class_id)
        if cached and cached.starts_at <= now < cached.ends_at:
            return cached
        race: Race | None = race_current_for_class(class_id=class_id, now=now)
        if race is None:
            self.races.pop(class_id, None)
            return None
        current = _CurrentRace(race.pk, race.starts_at, race.ends_at, race_payload(race))
        self.races[class_id] = current
        return current

    def _error(self, code: str, **extra: Any) -> None:
        self.send(text_data=json.dumps({"type": "error", "code": code, "message": MESSAGES[code], **extra}))
