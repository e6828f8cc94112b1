"""The class history objects ("All time" ghost): ``s3://$ALLEYCAT_HISTORY_BUCKET/class-<id>.json.gz``.

The one home of the location: the bucket is ``processors.config.Config.history_bucket`` and the key
``history_key``; the handler writes there and Django (``leaderboards/integrations.py``) reads there.

Format (docs/contracts.md)::

    {"classId": 3, "updatedAt": 1764172800000, "racers": {"17": [101.2, 102.0, null, ...]}}

``racers[id][i]`` is the racer's best output ever at second ``i + 1`` in the class, ``null`` where
never seen.

Writers merge with a read-modify-write that cannot lose a concurrent update: read the object and
its ETag, merge, then ``PutObject`` with ``If-Match: <etag>`` (or ``If-None-Match: *`` when the
object does not exist yet). S3 rejects the put with 412 (or 409 while another conditional write
is in flight) if anyone wrote in between; we then re-read and merge again (``processors.retry``).
The merge is a per-second maximum, so it is commutative and idempotent: any interleaving of
writers, and any replay, gives the same object. A merge that changes nothing writes nothing, so
replaying an input leaves the object byte-for-byte (and ETag) identical. Objects are encoded
deterministically (sorted keys, gzip mtime 0).

The pure functions here (``best_outputs``, ``merge_bests``, ``encode_history``, ``decode_history``)
do no I/O; ``merge_class_history`` and ``read_class_history`` are the S3 adapter.
"""

from __future__ import annotations

import gzip
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from botocore.exceptions import ClientError

from processors.domain.message import Reading
from processors.retry import GaveUp, TryAgain, attempts

MAX_MERGE_ATTEMPTS = 12
# Codes S3 answers a conditional write with when someone else won the race.
_CONFLICT_CODES = frozenset({"PreconditionFailed", "ConditionalRequestConflict", "412", "409"})

# class id -> racer id -> second -> best output
ClassBests = dict[int, dict[int, dict[int, float]]]


def history_key(class_id: int) -> str:
    return f"class-{int(class_id)}.json.gz"


# --------------------------------------------------------------------------- pure functions


def best_outputs(readings: Iterable[Reading], *, by_race: bool = False) -> ClassBests:
    """Best output per (class, racer, second) among ``readings``; per (race, racer, second) with ``by_race``."""
    bests: ClassBests = {}
    for reading in readings:
        group = reading.race_id if by_race else reading.class_id
        seconds = bests.setdefault(group, {}).setdefault(reading.racer_id, {})
        previous = seconds.get(reading.second)
        if previous is None or reading.output > previous:
            seconds[reading.second] = reading.output
    return bests


def merge_bests(
    document: Mapping[str, Any] | None,
    class_id: int,
    bests: Mapping[int, Mapping[int, float]],
    updated_at_ms: int,
) -> dict[str, Any] | None:
    """``document`` with ``bests`` merged in (per-second maximum), or None when nothing improves."""
    racers: dict[str, list[float | None]] = {
        key: list(values) for key, values in (document or {}).get("racers", {}).items()
    }
    changed = document is None
    for racer_id, seconds in bests.items():
        if not seconds:
            continue
        row = racers.setdefault(str(racer_id), [])
        for second, output in seconds.items():
            index = second - 1
            if index >= len(row):
                row.extend([None] * (index + 1 - len(row)))
            current = row[index]
            if current is None or output > current:
                row[index] = output
                changed = True
    if not changed:
        return None
    return {"classId": int(class_id), "updatedAt": int(updated_at_ms), "racers": racers}


HISTORY_GZIP_LEVEL = 1


def encode_history(document: Mapping[str, Any]) -> bytes:
    """Deterministic gzip JSON: the same document always gives the same bytes.

    Level 1, not gzip's default 9: the object is rewritten for every delivered object that improves
    a best, and a class of 2,000 racers x 300 s (5.4 MB of JSON) took 866 ms of CPU at level 9 and
    80 ms at level 1, for 2.65 MB instead of 2.25 MB (the history worker spent 79% of its time in
    gzip during a 1,000-racer race).
    """
    return gzip.compress(orjson.dumps(document, option=orjson.OPT_SORT_KEYS), compresslevel=HISTORY_GZIP_LEVEL, mtime=0)


def decode_history(data: bytes) -> dict[str, Any]:
    return orjson.loads(gzip.decompress(data))


# --------------------------------------------------------------------------- S3 adapter


@dataclass(frozen=True, slots=True)
class MergeResult:
    class_id: int
    written: bool  # False: nothing improved, the object was left alone
    attempts: int  # conditional puts tried (> 1 means a concurrent writer was merged with)


def read_class_history(s3: Any, bucket: str, class_id: int) -> tuple[dict[str, Any] | None, str | None]:
    """(document, etag) of a class's history object; (None, None) when it does not exist yet."""
    try:
        response = s3.get_object(Bucket=bucket, Key=history_key(class_id))
    except ClientError as exc:
        if exc.response["Error"]["Code"] in ("NoSuchKey", "404"):
            return None, None
        raise
    return decode_history(response["Body"].read()), response["ETag"]


def merge_class_history(
    s3: Any,
    bucket: str,
    class_id: int,
    bests: Mapping[int, Mapping[int, float]],
    *,
    now_ms: int | None = None,
) -> MergeResult:
    """Merge ``bests`` (racer -> second -> output) into the class object with a conditional put, retrying conflicts."""
    return _update_class_history(
        s3, bucket, class_id, lambda document, updated_at: merge_bests(document, class_id, bests, updated_at), now_ms
    )


def replace_racer_history(
    s3: Any,
    bucket: str,
    class_id: int,
    racer_id: int,
    seconds: Mapping[int, float],
    *,
    now_ms: int | None = None,
) -> MergeResult:
    """Set one racer's row of the class object to ``seconds`` (second -> best output), dropping the row when empty.

    For staff corrections (a voided result): unlike ``merge_class_history`` this may lower a racer's
    bests, so it is not a merge; it replaces the racer's row only, with the same conditional put, so
    a concurrent merge of other racers' bests is never lost.
    """
    row: list[float | None] = []
    for second, output in sorted(seconds.items()):
        row.extend([None] * (second - len(row)))
        row[second - 1] = output

    def replace(document: Mapping[str, Any] | None, updated_at: int) -> dict[str, Any] | None:
        racers = dict((document or {}).get("racers", {}))
        if racers.get(str(racer_id), []) == row or (document is None and not row):
            return None
        if row:
            racers[str(racer_id)] = row
        else:
            racers.pop(str(racer_id), None)
        return {"classId": int(class_id), "updatedAt": updated_at, "racers": racers}

    return _update_class_history(s3, bucket, class_id, replace, now_ms)


def _update_class_history(
    s3: Any,
    bucket: str,
    class_id: int,
    change: Callable[[Mapping[str, Any] | None, int], dict[str, Any] | None],
    now_ms: int | None,
) -> MergeResult:
    """Read the class object, ``change`` it (None: nothing to write), put it back only if nobody wrote meanwhile."""
    key = history_key(class_id)
    try:
        for attempt in attempts(MAX_MERGE_ATTEMPTS):
            with attempt:
                number = attempt.retry_state.attempt_number
                document, etag = read_class_history(s3, bucket, class_id)
                changed = change(document, now_ms if now_ms is not None else int(time.time() * 1000))
                if changed is None:
                    return MergeResult(class_id, written=False, attempts=number - 1)
                condition = {"IfMatch": etag} if etag is not None else {"IfNoneMatch": "*"}
                try:
                    s3.put_object(
                        Bucket=bucket,
                        Key=key,
                        Body=encode_history(changed),
                        ContentType="application/gzip",
                        **condition,
                    )
                except ClientError as exc:
                    if exc.response["Error"]["Code"] not in _CONFLICT_CODES:
                        raise
                    raise TryAgain(key) from exc
                return MergeResult(class_id, written=True, attempts=number)
    except GaveUp as exc:
        raise RuntimeError(f"history {key}: gave up after {MAX_MERGE_ATTEMPTS} conflicting writers") from exc
    raise AssertionError("unreachable: attempts() returns or raises")
