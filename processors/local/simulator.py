"""Bikes in software: one message per racer per second into the Kinesis stream (Django-free core).

Used by ``manage.py simulate`` (which finds the race in the schedule) and by the end-to-end tests.

- Racer profiles are deterministic: the same racer id always gets the same ability and, when no
  name is given (from a Racer row), the same Faker name (``processors.local.names``); the variation within a race is
  seeded by (race id, racer id, second), so replaying a race sends the same numbers.
- Messages follow DESIGN.md "The bike message"; the last second played is the racer's ``final``.
- PutRecords in batches of at most 500 records (and 5 MB), partition key ``<raceId>:<racerId>`` (the
  contract's recommended key: a race spreads over every shard, as bikes' keys do); records that
  come back failed (FailedRecordCount > 0: throttling, an endpoint hiccup) are sent again with
  back-off, so nothing is lost quietly.
- ``speed`` plays faster than real time: second ``s`` is due at ``start + (s - first) / speed``.
  When the endpoint cannot keep up, the simulator sends as fast as it can and reports the rate.
"""

from __future__ import annotations

import functools
import logging
import math
import random
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import orjson

from processors.local.names import distinct_names, racer_name

logger = logging.getLogger(__name__)

MAX_BATCH_RECORDS = 500
MAX_BATCH_BYTES = 5 * 1024 * 1024
MAX_PUT_ATTEMPTS = 12
MAX_RACERS = 20_000


@dataclass(frozen=True)
class RacerProfile:
    racer_id: int
    name: str
    cadence: float  # typical rpm
    resistance: float  # typical resistance
    fade: float  # how much the racer slows down towards the end (0..0.25)


def racer_profile(racer_id: int, name: str | None = None) -> RacerProfile:
    """The racer's ability, from the racer id alone (the same racer is as strong in every race)."""
    rng = random.Random(f"alleycat-racer:{racer_id}")
    return RacerProfile(
        racer_id=racer_id,
        name=(name or racer_name(racer_id))[:64],
        cadence=rng.uniform(60.0, 110.0),
        resistance=rng.uniform(25.0, 70.0),
        fade=rng.uniform(0.0, 0.25),
    )


@dataclass(frozen=True)
class RaceSpec:
    race_id: int
    class_id: int
    first_second: int = 1
    last_second: int = 300  # the racers' final message is sent at this second

    @property
    def seconds(self) -> int:
        return self.last_second - self.first_second + 1


def _clamp(value: float, low: float, high: float) -> float:
    return low if value < low else high if value > high else value


_MASK64 = (1 << 64) - 1
_UUID_CLEAR = ~((0xF << 76) | (0x3 << 62))  # version nibble, variant bits
_UUID_SET = (0x4 << 76) | (0x2 << 62)  # version 4, variant RFC 4122


def _splitmix64(value: int) -> int:
    """One step of SplitMix64: a well-mixed 64-bit number from any integer (no generator to seed)."""
    value = (value + 0x9E3779B97F4A7C15) & _MASK64
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & _MASK64
    return value ^ (value >> 31)


def _gauss_pair(seed: int) -> tuple[float, float]:
    """Two independent standard normal numbers, a pure function of ``seed`` (Box-Muller)."""
    first = _splitmix64(seed)
    second = _splitmix64(first)
    u1 = ((first >> 11) + 1) / 9007199254740993.0  # (0, 1]: log is finite
    u2 = (second >> 11) / 9007199254740992.0
    radius = math.sqrt(-2.0 * math.log(u1))
    return radius * math.cos(math.tau * u2), radius * math.sin(math.tau * u2)


@functools.lru_cache(maxsize=MAX_RACERS)
def _form(race_id: int, racer_id: int) -> float:
    """The racer's form in this race (0.92-1.08), the same for every second of it."""
    return 0.92 + 0.16 * (_splitmix64(race_id * 31 + racer_id * 1_000_033) >> 11) / 9007199254740992.0


def _message_uuid() -> str:
    """A version-4 UUID's text from the process's random generator (reseeded after a fork).

    Messages need unique ids, not secret ones: 122 random bits from Mersenne Twister instead of
    ``uuid.uuid4()``'s ``os.urandom`` call and UUID object (0.35 vs 2.5 µs; playing 10,000 racers
    the simulator spent an eighth of its CPU there).
    """
    bits = random.getrandbits(128) & _UUID_CLEAR | _UUID_SET
    text = f"{bits:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def racer_message(race: RaceSpec, racer: RacerProfile, second: int, *, device_ts: int) -> dict[str, Any]:
    """The message of one racer at one second (deterministic apart from ``uuid`` and ``deviceTimestamp``).

    The numbers are a pure function of (race, racer, second): a generator seeded per message cost
    more than the rest of the message (4 µs a seed, two a message).
    """
    noise_cadence, noise_resistance = _gauss_pair(race.race_id * 1_000_003 + racer.racer_id * 7919 + second)
    progress = second / max(race.last_second, 1)
    effort = _form(race.race_id, racer.racer_id) * (1.0 - racer.fade * progress * progress)
    cadence = _clamp(racer.cadence * effort + noise_cadence * 6, 0, 250)
    resistance = _clamp(racer.resistance + noise_resistance * 4, 0, 100)
    return {
        "uuid": _message_uuid(),
        "event": "final" if second == race.last_second else "update",
        "deviceTimestamp": device_ts,
        "second": second,
        "raceId": race.race_id,
        "name": racer.name,
        "racerId": racer.racer_id,
        "classId": race.class_id,
        "cadence": round(cadence, 1),
        "resistance": round(resistance, 1),
    }


@dataclass
class SimulationResult:
    sent: int = 0
    retried: int = 0
    lost: int = 0
    seconds_played: int = 0
    elapsed: float = 0.0
    messages: list[dict] = field(default_factory=list)  # only when collecting

    @property
    def rate(self) -> float:
        return self.sent / self.elapsed if self.elapsed else 0.0


class Simulator:
    """Sends the messages of races to one Kinesis stream.

    ``workers`` > 1 sends the batches of a second in parallel (real Kinesis, many shards); the
    default is sequential (one endpoint on 127.0.0.1: parallel calls only contend for it).
    """

    def __init__(self, kinesis: Any, stream: str, *, workers: int = 1, stop: threading.Event | None = None) -> None:
        self.kinesis = kinesis
        self.stream = stream
        self.workers = workers
        self.stop = stop or threading.Event()  # set: give up retrying (the process is stopping)

    def put(self, messages: Sequence[dict]) -> tuple[int, int, int]:
        """Send messages with PutRecords (≤ 500 per call), retrying failed records. (sent, retried, lost)."""
        batches: list[list[tuple[bytes, str]]] = [[]]
        size = 0
        for message in messages:
            data = orjson.dumps(message)
            if len(batches[-1]) == MAX_BATCH_RECORDS or size + len(data) > MAX_BATCH_BYTES:
                batches.append([])
                size = 0
            batches[-1].append((data, f"{message['raceId']}:{message['racerId']}"))
            size += len(data) + 16
        batches = [batch for batch in batches if batch]
        if len(batches) == 1 or self.workers == 1:
            results = [self._put_batch(batch) for batch in batches]
        else:
            with ThreadPoolExecutor(max_workers=min(self.workers, len(batches))) as pool:
                results = list(pool.map(self._put_batch, batches))
        return tuple(sum(column) for column in zip(*results, strict=True)) if results else (0, 0, 0)  # type: ignore[return-value]

    def _put_batch(self, batch: list[tuple[bytes, str]]) -> tuple[int, int, int]:
        pending = batch
        retried = 0
        for attempt in range(MAX_PUT_ATTEMPTS):
            try:
                response = self.kinesis.put_records(
                    StreamName=self.stream, Records=[{"Data": data, "PartitionKey": key} for data, key in pending]
                )
            except Exception as exc:  # the endpoint is down or throttling the whole call: back off, try again
                if self.stop.is_set():
                    break
                logger.warning("PutRecords failed (%s), retrying %d records", exc, len(pending))
                retried += len(pending)
                self.stop.wait(min(5.0, 0.1 * 2**attempt))
                continue
            if not response.get("FailedRecordCount"):
                return len(batch), retried, 0
            pending = [item for item, result in zip(pending, response["Records"], strict=True) if "ErrorCode" in result]
            retried += len(pending)
            if self.stop.wait(min(2.0, 0.05 * 2**attempt)):
                break
        logger.error("gave up on %d records after %d attempts", len(pending), MAX_PUT_ATTEMPTS)
        return len(batch) - len(pending), retried, len(pending)

    def play(
        self,
        race: RaceSpec,
        racers: Sequence[RacerProfile],
        *,
        speed: float = 1.0,
        collect: bool = False,
        stop: threading.Event | None = None,
        progress: Callable[[int, SimulationResult], None] | None = None,
    ) -> SimulationResult:
        """Play seconds ``first_second..last_second`` of ``race`` for ``racers``; returns what was sent."""
        if len(racers) > MAX_RACERS:
            raise ValueError(f"at most {MAX_RACERS} racers")
        result = SimulationResult()
        started = time.monotonic()
        for index, second in enumerate(range(race.first_second, race.last_second + 1)):
            due = started + index / speed
            delay = due - time.monotonic()
            if delay > 0 and (stop.wait(delay) if stop is not None else time.sleep(delay)):
                break
            if stop is not None and stop.is_set():
                break
            device_ts = int(time.time() * 1000)
            messages = [racer_message(race, racer, second, device_ts=device_ts) for racer in racers]
            sent, retried, lost = self.put(messages)
            result.sent += sent
            result.retried += retried
            result.lost += lost
            result.seconds_played += 1
            if collect:
                result.messages.extend(messages)
            result.elapsed = time.monotonic() - started
            if progress is not None:
                progress(len(messages), result)
        result.elapsed = time.monotonic() - started
        return result


def profiles(racers: Iterable[tuple[int, str | None]]) -> list[RacerProfile]:
    """Profiles for (racer id, name or None) pairs; names of Racer rows win over generated ones.

    Generated names are distinct from each other and from the given names (no two "Ada Pedal"s
    told apart only by an id).
    """
    pairs = list(racers)
    given = [name for _racer_id, name in pairs if name]
    generated = distinct_names((racer_id for racer_id, name in pairs if not name), taken=given)
    return [racer_profile(racer_id, name or generated[racer_id]) for racer_id, name in pairs]
