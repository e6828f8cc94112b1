"""Key formats and item shapes (DynamoDB JSON), pure functions: no boto3, no I/O.

Numbers that are scores are written as exact decimals from integer ten-thousandths, so
DynamoDB holds exactly what the domain computed.

The live item of a race (A1) is one item:

    pk="RACE#<race>" sk="LIVE" raceId classId version updatedAt [settledAt]
    board: binary, one record per racer (see below)

``settledAt`` freezes the live item: it is set when the race settles, and the aggregator never
merges into a live item that carries it (see ``ResultsTable.merge_live`` and ``settle_race``).

A race of many thousand racers does not fit one item (400 KB). Its board is then split in ``parts``
items by racer, and the ``LIVE`` item is a small summary that says how many:

    pk="RACE#<race>" sk="LIVE" raceId classId version updatedAt parts [settledAt]      (no board)
    pk="RACE#<race>#LIVE#<p>" sk="LIVE" raceId classId version updatedAt part parts board [settledAt]

A racer's part is the slice of the 128-bit MD5 of ``<raceId>:<racerId>`` (the contract's partition
key), ``board_part``: Kinesis puts a record on the shard whose hash-key range holds the MD5 of its
partition key, so with that key and as many parts as shards (equal ranges), each shard's
aggregator writes one part, nobody else writes it, and the race costs the same write units as one
item would. Any other key is as exact, only dearer (every shard writes every part). Each part has
its own partition key, so the parts' writes spread over DynamoDB partitions; each part is written
conditionally on its own version and frozen by its own ``settledAt``. The number of parts is fixed
when a race's summary is created (``ALLEYCAT_LIVE_BOARD_PARTS``, 1 = the board in the summary
itself, as above); readers read the summary and then every part in one BatchGetItem.

The identity of a race (A0) is written by the races app, and marked settled by the pipeline:

    pk="RACE#<race>" sk="IDENTITY" raceId classId startsAt endsAt lengthS settleAt cancelled
    publishedAt [settledAt] [gsi1pk="SETTLE#PENDING" gsi1sk=<settleAt, 16 digits>]

The gsi1 keys are present while the race waits to settle (not settled, not cancelled): the
aggregator finds the races due with one Query on that sparse partition. Each aggregator shard
keeps its position (the arrival time of the newest record it has written out) in

    pk="PIPELINE" sk="WATERMARK#<shardId>" arrivalMs updatedAt

``board`` holds every racer in one binary attribute (format byte 1, then per racer a little-endian
header ``<qqqqHHBHH``: racer id, score in ten-thousandths, last output in ten-thousandths, finished
at (ms), last second, name second, flags (bit 0: finished), name length, seconds length; then the
UTF-8 name and the seconds). One attribute instead of a map of 1,000 seven-element lists: the
aggregator's GetItem + PutItem, the table stream's images and every reader of them parse one value
instead of ~7,000 (moto, botocore and DynamoDB alike).

``seconds`` is the set of counted seconds as bytes: tag 0 + little-endian bitmap, tag 1 +
big-endian uint16 (first, last) pairs of runs, or tag 2 + zlib of the bitmap, whichever is
shortest. A racer riding without gaps costs 5 bytes whatever the race length; a 5-minute race
costs at most 39 bytes per racer. Size bound: 41 bytes + name + seconds per racer, so 1,000 racers
with 64-character names fit in 400 KB up to roughly 290 bytes of seconds each: any 5-minute race,
and an hour-long race unless most racers drop more than ~1 in 10 messages (tested: a gap every
minute). A race over the limit is not written (see ``merge_live``).
"""

from __future__ import annotations

import base64
import hashlib
import struct
import zlib
from collections.abc import Iterable, Mapping
from typing import Any, TypeGuard

from processors.domain.message import MAX_ID, MAX_ID_DIGITS
from processors.domain.schedule import RaceIdentity
from processors.domain.scoring import UNITS_PER_POINT, output_units, units_to_score
from processors.domain.standings import RacerTotal, finished_changes, rank_key
from processors.table.models import FinalResult, LiveRow, LiveStandings, PersonalBest
from processors.table.schema import GSI1_PK, GSI1_SK, GSI2_PK, GSI2_SK, PK, SK

LIVE_SK = "LIVE"
IDENTITY_SK = "IDENTITY"
PIPELINE_PK = "PIPELINE"
WATERMARK_PREFIX = "WATERMARK#"
SETTLE_PENDING_GSI1PK = "SETTLE#PENDING"
SETTLED_AT = "settledAt"
BOARD = "board"  # the live item's binary attribute with every racer
PARTS = "parts"  # a split board: how many parts (on the summary and on every part)
PART = "part"  # which part an item is
MAX_BOARD_PARTS = 64
OUTPUTS = "outputs"  # a per-second part's binary attribute
_SECOND_OUTPUT = struct.Struct("<HI")
_SECONDS_HEADER = struct.Struct("<QH")
SECONDS_BUCKETS = 64
_BOARD_FORMAT = 1
_BOARD_RACER = struct.Struct("<qqqqHHBHH")
_BOARD_HEADER = bytes([_BOARD_FORMAT])
_FINISHED = 1
_ID_WIDTH = MAX_ID_DIGITS
_SCORE_WIDTH = 20
MAX_ITEM_BYTES = 400 * 1024  # DynamoDB's documented limit (attribute names + values)
# What the aggregator writes at most. ``item_size`` is an estimate, and the embedded endpoint (moto
# 5.2) already refused a live item our estimate put at 405,001 bytes (measured: 405,000 accepted).
# 384 KiB keeps ~12 KB below the smallest refusal measured; a refusal is still handled (merge_live).
LIVE_ITEM_LIMIT_BYTES = 384 * 1024

_TAG_BITMAP = 0
_TAG_RUNS = 1
_TAG_ZLIB_BITMAP = 2
_ZLIB_WORTH_TRYING = 64  # bytes of bitmap: below this, compression cannot pay for itself


# --- keys --------------------------------------------------------------------------------


def race_pk(race_id: int) -> str:
    return f"RACE#{race_id}"


def class_pk(class_id: int) -> str:
    return f"CLASS#{class_id}"


def result_sk(racer_id: int) -> str:
    return f"RESULT#{racer_id:0{_ID_WIDTH}d}"


def best_sk(racer_id: int) -> str:
    return f"BEST#{racer_id:0{_ID_WIDTH}d}"


def seconds_bucket(racer_id: int) -> int:
    """The bucket of a racer's per-second parts: racers share items, 64 buckets a race."""
    return racer_id % SECONDS_BUCKETS


def seconds_sk(bucket: int, part: str | None = None) -> str:
    """Sort key of a bucket's per-second parts: ``SECONDS#<bucket>`` is the prefix of all its parts."""
    prefix = f"SECONDS#{bucket:02d}"
    return prefix if part is None else f"{prefix}#{part}"


def seconds_part(source: str) -> str:
    """The part name of per-second items written from ``source`` (a delivered object): stable, 12 hex digits.

    The same object always gives the same part, so a replay rewrites the same items with the same values.
    """
    return hashlib.blake2b(source.encode(), digest_size=6).hexdigest()


def race_results_gsi1pk(race_id: int) -> str:
    return f"RACE#{race_id}#RESULTS"


def class_bests_gsi1pk(class_id: int) -> str:
    return f"CLASS#{class_id}#BESTS"


def racer_gsi2pk(racer_id: int) -> str:
    return f"RACER#{racer_id}"


def score_sort_key(score_units: int, racer_id: int) -> str:
    """Sorts by score, then by *descending* racer id; read backwards: the ranking rule
    (``processors.domain.standings.rank_key``: score desc, racer id asc)."""
    return f"{score_units:0{_SCORE_WIDTH}d}#{MAX_ID - racer_id:0{_ID_WIDTH}d}"


def race_sort_key(race_id: int) -> str:
    return f"{race_id:0{_ID_WIDTH}d}"


def live_key(race_id: int) -> dict[str, dict[str, str]]:
    return {PK: {"S": race_pk(race_id)}, SK: {"S": LIVE_SK}}


def live_part_key(race_id: int, part: int) -> dict[str, dict[str, str]]:
    """A part of a split live board: a partition of its own (``RACE#<race>#LIVE#<part>``)."""
    return {PK: {"S": f"{race_pk(race_id)}#LIVE#{part}"}, SK: {"S": LIVE_SK}}


def board_part(race_id: int, racer_id: int, parts: int) -> int:
    """The part of a split board that holds a racer: a slice of MD5("<raceId>:<racerId>") (module docstring)."""
    if parts == 1:
        return 0
    digest = hashlib.md5(f"{race_id}:{racer_id}".encode(), usedforsecurity=False).digest()
    return (int.from_bytes(digest, "big") * parts) >> 128


def identity_key(race_id: int) -> dict[str, dict[str, str]]:
    return {PK: {"S": race_pk(race_id)}, SK: {"S": IDENTITY_SK}}


def watermark_key(shard_id: str) -> dict[str, dict[str, str]]:
    return {PK: {"S": PIPELINE_PK}, SK: {"S": f"{WATERMARK_PREFIX}{shard_id}"}}


def settle_sort_key(settle_at_ms: int) -> str:
    return f"{settle_at_ms:0{_ID_WIDTH}d}"


def result_key(race_id: int, racer_id: int) -> dict[str, dict[str, str]]:
    return {PK: {"S": race_pk(race_id)}, SK: {"S": result_sk(racer_id)}}


def best_key(class_id: int, racer_id: int) -> dict[str, dict[str, str]]:
    return {PK: {"S": class_pk(class_id)}, SK: {"S": best_sk(racer_id)}}


# --- numbers -----------------------------------------------------------------------------


def units_to_number(units: int) -> str:
    """Integer ten-thousandths as an exact decimal string, e.g. 1234567 -> '123.4567'."""
    sign = "-" if units < 0 else ""
    units = abs(units)
    return f"{sign}{units // UNITS_PER_POINT}.{units % UNITS_PER_POINT:04d}"


def number_to_units(number: str) -> int:
    whole, _, fraction = number.partition(".")
    negative = whole.startswith("-")
    units = abs(int(whole or "0")) * UNITS_PER_POINT + int((fraction + "0000")[:4])
    return -units if negative else units


# --- the set of counted seconds ----------------------------------------------------------


_ONE_RUN = struct.Struct(">BHH")


def _runs(bits: int) -> list[tuple[int, int]]:
    """Maximal runs of set bits as (first, last), visiting only run boundaries."""
    runs = []
    starts = bits & ~(bits << 1)
    ends = bits & ~(bits >> 1)
    while starts:
        low = starts & -starts
        first = low.bit_length() - 1
        starts ^= low
        low_end = ends & -ends
        last = low_end.bit_length() - 1
        ends ^= low_end
        runs.append((first, last))
    return runs


def encode_seconds(bits: int) -> bytes:
    """The shortest of: runs (riding without gaps), plain bitmap, zlib bitmap (long, gappy rides)."""
    bitmap_len = (bits.bit_length() + 7) // 8
    if bitmap_len > 4:  # one run (a racer riding without a gap, the common case): no scan of the bits
        first = (bits & -bits).bit_length() - 1
        shifted = bits >> first
        if shifted & (shifted + 1) == 0:
            return _ONE_RUN.pack(_TAG_RUNS, first, bits.bit_length() - 1)
    runs = _runs(bits)
    if 4 * len(runs) < bitmap_len:
        return bytes([_TAG_RUNS]) + b"".join(struct.pack(">HH", first, last) for first, last in runs)
    bitmap = bits.to_bytes(bitmap_len, "little")
    if bitmap_len >= _ZLIB_WORTH_TRYING:
        packed = zlib.compress(bitmap, 9)
        if len(packed) < bitmap_len:
            return bytes([_TAG_ZLIB_BITMAP]) + packed
    return bytes([_TAG_BITMAP]) + bitmap


def decode_seconds(data: bytes) -> int:
    if not data:
        return 0
    if data[0] == _TAG_BITMAP:
        return int.from_bytes(data[1:], "little")
    if data[0] == _TAG_ZLIB_BITMAP:
        return int.from_bytes(zlib.decompress(data[1:]), "little")
    if len(data) == _ONE_RUN.size:
        _tag, first, last = _ONE_RUN.unpack(data)
        return ((1 << (last - first + 1)) - 1) << first
    bits = 0
    for first, last in struct.iter_unpack(">HH", data[1:]):
        bits |= ((1 << (last - first + 1)) - 1) << first
    return bits


# --- live item ---------------------------------------------------------------------------


def live_item(
    race_id: int,
    class_id: int,
    totals: Mapping[int, RacerTotal],
    *,
    version: int,
    updated_at_ms: int,
    part: tuple[int, int] | None = None,
    board: bytes | None = None,
) -> dict[str, Any]:
    """The live item of a race, or with ``part=(part, parts)`` one part of its split board.

    ``board``: ``totals`` already encoded (``encode_board``), by a writer that keeps its racers' rows.
    """
    item = {
        **(live_key(race_id) if part is None else live_part_key(race_id, part[0])),
        "raceId": {"N": str(race_id)},
        "classId": {"N": str(class_id)},
        "version": {"N": str(version)},
        "updatedAt": {"N": str(updated_at_ms)},
        BOARD: {"B": encode_board(totals) if board is None else board},
    }
    if part is not None:
        item[PART] = {"N": str(part[0])}
        item[PARTS] = {"N": str(part[1])}
    return item


def live_summary_item(race_id: int, class_id: int, parts: int, *, updated_at_ms: int) -> dict[str, Any]:
    """The summary of a split board (no racers: they are in ``parts`` part items)."""
    return {
        **live_key(race_id),
        "raceId": {"N": str(race_id)},
        "classId": {"N": str(class_id)},
        "version": {"N": "0"},
        "updatedAt": {"N": str(updated_at_ms)},
        PARTS: {"N": str(parts)},
    }


def live_parts(item: Mapping[str, Any]) -> int:
    """How many parts a race's board has (1: the board is in the live item itself)."""
    value = item.get(PARTS)
    return int(value["N"]) if value else 1


def is_split_summary(item: Mapping[str, Any] | None) -> bool:
    """The summary of a split board (its racers are in the part items)."""
    return bool(item) and PARTS in item and PART not in item  # type: ignore[operator]


def encode_board(totals: Mapping[int, RacerTotal]) -> bytes:
    """Every racer of a race as one binary value (format in the module docstring)."""
    return join_board(board_row(racer_id, total) for racer_id, total in totals.items())


def board_row(racer_id: int, total: RacerTotal) -> bytes:
    """One racer's record of the board; a board is ``join_board`` of its racers' rows, in any order."""
    name = total.name.encode()
    seconds = encode_seconds(total.seconds)
    finished = total.finished_at_ms
    return (
        _BOARD_RACER.pack(
            racer_id,
            total.score_units,
            output_units(total.last_output),
            finished or 0,
            total.last_second,
            total.name_second,
            _FINISHED if finished is not None else 0,
            len(name),
            len(seconds),
        )
        + name
        + seconds
    )


def join_board(rows: Iterable[bytes]) -> bytes:
    """The board attribute's value from its racers' rows (``board_row``)."""
    return _BOARD_HEADER + b"".join(rows)


def _board_rows(data: bytes) -> list[tuple[int, int, int, int | None, int, int, str, bytes]]:
    """(racer id, score units, last output units, finished at ms or None, last second, name second, name, seconds)."""
    if not data or data[0] != _BOARD_FORMAT:
        raise ValueError(f"unknown live board format {data[:1]!r}")
    unpack = _BOARD_RACER.unpack_from
    header = _BOARD_RACER.size
    rows = []
    offset, end = 1, len(data)
    while offset < end:
        racer_id, score, output, finished, last_second, name_second, flags, name_len, seconds_len = unpack(data, offset)
        offset += header
        name = data[offset : offset + name_len].decode()
        offset += name_len
        seconds = data[offset : offset + seconds_len]
        offset += seconds_len
        if offset > end:
            raise ValueError("truncated live board")
        rows.append(
            (racer_id, score, output, finished if flags & _FINISHED else None, last_second, name_second, name, seconds)
        )
    return rows


def _binary(value: Any) -> bytes:
    # The low-level client gives bytes; a Lambda stream event gives base64 text.
    if isinstance(value, str):
        return base64.b64decode(value)
    return bytes(value)


_LIVE_ATTRIBUTES = ("raceId", "classId", "version", "updatedAt", BOARD)


def is_live_image(image: Mapping[str, Any] | None) -> TypeGuard[Mapping[str, Any]]:
    """A live item's image with everything a reader needs.

    Only the key is not enough: moto 5.2 answers an UpdateItem that creates an item with two table-stream
    INSERTs, the first holding the key alone (``DynamoDBBackend.update_item`` puts the bare key, then
    updates it). Such an image is no live item yet; the next record carries the whole item.
    """
    return (
        image is not None
        and image.get(SK, {}).get("S") == LIVE_SK
        and all(name in image for name in _LIVE_ATTRIBUTES)
        and not is_split_summary(image)
    )


def is_live_part_image(image: Mapping[str, Any] | None) -> bool:
    """A part of a split board (its readers need the other parts too for a ranking)."""
    return is_live_image(image) and PART in image


def live_totals(item: Mapping[str, Any]) -> dict[int, RacerTotal]:
    """The racers of a live item (GetItem result or stream image) as domain totals."""
    return {
        racer_id: RacerTotal(
            name=name,
            name_second=name_second,
            score_units=score,
            seconds=decode_seconds(seconds),
            last_second=last_second,
            last_output=units_to_score(output),
            finished_at_ms=finished,
        )
        for racer_id, score, output, finished, last_second, name_second, name, seconds in _board_rows(
            _binary(item[BOARD]["B"])
        )
    }


def live_header(item: Mapping[str, Any]) -> tuple[int, int, int, int]:
    """(race_id, class_id, version, updated_at_ms) of a live item."""
    return (
        int(item["raceId"]["N"]),
        int(item["classId"]["N"]),
        int(item["version"]["N"]),
        int(item["updatedAt"]["N"]),
    )


def live_standings_from_item(item: Mapping[str, Any]) -> LiveStandings:
    """Ranked standings from a live item (GetItem result or a stream NewImage in DynamoDB JSON)."""
    return live_standings_from_parts(item, [item])


def live_standings_from_parts(summary: Mapping[str, Any], parts: Iterable[Mapping[str, Any]]) -> LiveStandings:
    """Ranked standings of a split board: the summary and its parts (version: the sum of theirs, so it only grows)."""
    race_id, class_id, version, updated_at_ms = live_header(summary)
    board = []
    for part in parts:
        board.extend(_board_rows(_binary(part[BOARD]["B"])))
        if part is not summary:
            _race, _class, part_version, part_updated = live_header(part)
            version += part_version
            updated_at_ms = max(updated_at_ms, part_updated)
    board.sort(key=lambda row: rank_key(row[1], row[0]))
    rows = [
        LiveRow(
            racer_id=racer_id,
            name=name,
            score=units_to_score(score),
            second=last_second,
            output=units_to_score(output),
            finished=finished is not None,
        )
        for racer_id, score, output, finished, last_second, _name_second, name, _seconds in board
    ]
    return LiveStandings(race_id=race_id, class_id=class_id, rows=rows, version=version, updated_at_ms=updated_at_ms)


def item_size(item: Mapping[str, Any]) -> int:
    """DynamoDB's item size (attribute names + values), close enough to check the 400 KB limit."""
    return sum(len(name.encode()) + _value_size(value) for name, value in item.items())


def _value_size(value: Mapping[str, Any]) -> int:
    ((kind, inner),) = value.items()
    if kind == "S":
        return len(inner.encode())
    if kind == "N":
        return (len(inner.lstrip("-").replace(".", "")) + 1) // 2 + 1
    if kind == "B":
        return len(inner)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "L":
        return 3 + sum(1 + _value_size(element) for element in inner)
    if kind == "M":
        return 3 + sum(1 + len(key.encode()) + _value_size(element) for key, element in inner.items())
    raise ValueError(f"unknown attribute type {kind}")


def is_live_settled(item: Mapping[str, Any] | None) -> bool:
    return bool(item) and SETTLED_AT in item  # type: ignore[operator]


# --- race identity (A0) ------------------------------------------------------------------


def identity_update(race: RaceIdentity, *, published_at_ms: int) -> dict[str, Any]:
    """UpdateItem arguments (without TableName) that publish a race's identity.

    An update, not a put: ``settledAt`` (the pipeline's) is left alone, and the condition
    refuses to change a race that has settled, whose results must never change again.
    """
    values: dict[str, Any] = {
        ":race": {"N": str(race.race_id)},
        ":class": {"N": str(race.class_id)},
        ":start": {"N": str(race.starts_at_ms)},
        ":end": {"N": str(race.ends_at_ms)},
        ":length": {"N": str(race.length_s)},
        ":settle": {"N": str(race.settle_at_ms)},
        ":cancelled": {"BOOL": race.cancelled},
        ":published": {"N": str(published_at_ms)},
    }
    assignments = [
        "raceId = :race",
        "classId = :class",
        "startsAt = :start",
        "endsAt = :end",
        "lengthS = :length",
        "settleAt = :settle",
        "cancelled = :cancelled",
        "publishedAt = :published",
    ]
    expression = "SET " + ", ".join(assignments)
    if race.cancelled:
        expression += f" REMOVE {GSI1_PK}, {GSI1_SK}"
    else:
        values[":pending"] = {"S": SETTLE_PENDING_GSI1PK}
        values[":due"] = {"S": settle_sort_key(race.settle_at_ms)}
        expression += f", {GSI1_PK} = :pending, {GSI1_SK} = :due"
    return {
        "Key": identity_key(race.race_id),
        "UpdateExpression": expression,
        "ConditionExpression": f"attribute_not_exists({SETTLED_AT})",
        "ExpressionAttributeValues": values,
    }


def race_identity_from_item(item: Mapping[str, Any]) -> RaceIdentity:
    settled = item.get(SETTLED_AT)
    return RaceIdentity(
        race_id=int(item["raceId"]["N"]),
        class_id=int(item["classId"]["N"]),
        starts_at_ms=int(item["startsAt"]["N"]),
        ends_at_ms=int(item["endsAt"]["N"]),
        length_s=int(item["lengthS"]["N"]),
        settle_at_ms=int(item["settleAt"]["N"]),
        cancelled=bool(item.get("cancelled", {}).get("BOOL", False)),
        settled_at_ms=int(settled["N"]) if settled else None,
    )


# --- final results and personal bests ----------------------------------------------------


def final_result_item(result: FinalResult) -> dict[str, Any]:
    units = output_units(result.score)
    return {
        PK: {"S": race_pk(result.race_id)},
        SK: {"S": result_sk(result.racer_id)},
        GSI1_PK: {"S": race_results_gsi1pk(result.race_id)},
        GSI1_SK: {"S": score_sort_key(units, result.racer_id)},
        GSI2_PK: {"S": racer_gsi2pk(result.racer_id)},
        GSI2_SK: {"S": race_sort_key(result.race_id)},
        "raceId": {"N": str(result.race_id)},
        "classId": {"N": str(result.class_id)},
        "racerId": {"N": str(result.racer_id)},
        "name": {"S": result.name},
        "score": {"N": units_to_number(units)},
        "second": {"N": str(result.second)},
        "finishedAt": {"N": str(result.finished_at_ms)},
    }


def final_result_from_item(item: Mapping[str, Any]) -> FinalResult:
    return FinalResult(
        race_id=int(item["raceId"]["N"]),
        class_id=int(item["classId"]["N"]),
        racer_id=int(item["racerId"]["N"]),
        name=item["name"]["S"],
        score=units_to_score(number_to_units(item["score"]["N"])),
        second=int(item["second"]["N"]),
        finished_at_ms=int(item["finishedAt"]["N"]),
    )


def personal_best_item(best: PersonalBest) -> dict[str, Any]:
    units = output_units(best.score)
    return {
        PK: {"S": class_pk(best.class_id)},
        SK: {"S": best_sk(best.racer_id)},
        GSI1_PK: {"S": class_bests_gsi1pk(best.class_id)},
        GSI1_SK: {"S": score_sort_key(units, best.racer_id)},
        "classId": {"N": str(best.class_id)},
        "racerId": {"N": str(best.racer_id)},
        "name": {"S": best.name},
        "score": {"N": units_to_number(units)},
        "raceId": {"N": str(best.race_id)},
    }


def personal_best_from_item(item: Mapping[str, Any]) -> PersonalBest:
    return PersonalBest(
        class_id=int(item["classId"]["N"]),
        racer_id=int(item["racerId"]["N"]),
        name=item["name"]["S"],
        score=units_to_score(number_to_units(item["score"]["N"])),
        race_id=int(item["raceId"]["N"]),
    )


# --- staff corrections: a voided result -------------------------------------------------
#
# ``RACE#<race>``/``VOID#<racer>``: the racer's result of the race was voided by staff. No index
# attributes, so it is in no ranking; readers that list a race's racers from the live item (DNF
# rows) leave these racers out, and a writer of final results can check it (one Query per race).

VOID_SK_PREFIX = "VOID#"


def void_sk(racer_id: int) -> str:
    return f"{VOID_SK_PREFIX}{racer_id:0{_ID_WIDTH}d}"


def void_key(race_id: int, racer_id: int) -> dict[str, dict[str, str]]:
    return {PK: {"S": race_pk(race_id)}, SK: {"S": void_sk(racer_id)}}


def void_item(result: FinalResult, *, voided_at_ms: int) -> dict[str, Any]:
    """The marker keeps the voided result's attributes (not its index keys): the void can be completed or read back."""
    item = {
        name: value
        for name, value in final_result_item(result).items()
        if name not in (GSI1_PK, GSI1_SK, GSI2_PK, GSI2_SK)
    }
    item[SK] = {"S": void_sk(result.racer_id)}
    item["voidedAt"] = {"N": str(voided_at_ms)}
    return item


def voided_racer_id_from_item(item: Mapping[str, Any]) -> int:
    return int(item["racerId"]["N"])


# --- per-second outputs of a racer in a race ---------------------------------------------


def race_seconds_items(
    race_id: int, part: str, outputs_by_racer: Mapping[int, Mapping[int, float]]
) -> list[dict[str, Any]]:
    """The per-second outputs of one delivered object in a race: one item per bucket of racers.

    ``outputs`` is binary: per racer a little-endian header ``<QH`` (racer id, number of seconds),
    then that many ``<HI`` pairs (second, output in ten-thousandths; a second is at most 3,600 and an
    output at most 470.25, see ``processors.domain.message``): 6 bytes a second. One attribute per
    item, and at most 64 items an object whatever the racers: a 1,000-racer object is 3
    BatchWriteItem calls, and a 5-minute race adds ~2,000 items to the table (one per bucket per
    object) rather than one per racer per object.
    """
    buckets: dict[int, list[bytes]] = {}
    for racer_id, outputs in sorted(outputs_by_racer.items()):
        if not outputs:
            continue
        pairs = sorted(outputs.items())
        flat = [value for second, output in pairs for value in (second, output_units(output))]
        record = _SECONDS_HEADER.pack(racer_id, len(pairs)) + struct.pack(f"<{'HI' * len(pairs)}", *flat)
        buckets.setdefault(seconds_bucket(racer_id), []).append(record)
    return [
        {PK: {"S": race_pk(race_id)}, SK: {"S": seconds_sk(bucket, part)}, OUTPUTS: {"B": b"".join(records)}}
        for bucket, records in sorted(buckets.items())
    ]


def seconds_from_items(racer_id: int, parts: Iterable[Mapping[str, Any]]) -> list[float | None]:
    """A racer's outputs in its bucket's parts, merged (the best per second); index 0 = second 1."""
    units: dict[int, int] = {}
    for item in parts:
        data = item[OUTPUTS]["B"]
        offset = 0
        while offset < len(data):
            racer, count = _SECONDS_HEADER.unpack_from(data, offset)
            offset += _SECONDS_HEADER.size
            end = offset + count * _SECOND_OUTPUT.size
            if racer == racer_id:
                for second, value in _SECOND_OUTPUT.iter_unpack(data[offset:end]):
                    if value > units.get(second, -1):
                        units[second] = value
            offset = end
    if not units:
        return []
    return [None if second not in units else units_to_score(units[second]) for second in range(1, max(units) + 1)]


# --- the table's stream (finals, publisher) ----------------------------------------------


def final_results_from_stream(
    old_image: Mapping[str, Any] | None, new_image: Mapping[str, Any] | None
) -> list[FinalResult]:
    """Final results to write for a live item's change: racers newly finished (or finished and changed).

    Images are DynamoDB JSON as in a stream record (binary values may be base64 text). Other
    items of the table (results, bests, seconds) give an empty list.
    """
    if not is_live_image(new_image):
        return []
    assert new_image is not None
    race_id, class_id, _version, _updated = live_header(new_image)
    new_totals = live_totals(new_image)
    old_totals = live_totals(old_image) if is_live_image(old_image) else {}
    return [
        FinalResult(
            race_id=race_id,
            class_id=class_id,
            racer_id=racer_id,
            name=new_totals[racer_id].name,
            score=new_totals[racer_id].score,
            second=new_totals[racer_id].last_second,
            finished_at_ms=new_totals[racer_id].finished_at_ms or 0,
        )
        for racer_id in finished_changes(old_totals, new_totals)
    ]


def finished_results_of_live(item: Mapping[str, Any]) -> list[FinalResult]:
    """The final result of every racer a live item (or a part) marks finished (what settlement reconciles)."""
    race_id, class_id, _version, _updated = live_header(item)
    return [
        FinalResult(
            race_id=race_id,
            class_id=class_id,
            racer_id=racer_id,
            name=total.name,
            score=total.score,
            second=total.last_second,
            finished_at_ms=total.finished_at_ms or 0,
        )
        for racer_id, total in sorted(live_totals(item).items())
        if total.finished_at_ms is not None
    ]


def personal_best_of(result: FinalResult) -> PersonalBest:
    return PersonalBest(
        class_id=result.class_id, racer_id=result.racer_id, name=result.name, score=result.score, race_id=result.race_id
    )
