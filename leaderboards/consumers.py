"""WebSocket consumers: live standings of a race (``/ws/races/<id>/``) and of a class's current
race (``/ws/classes/<id>/``). Browser message formats: README.md, "Live messages".

Thin by design: the publisher (``processors/handlers/publisher.py``) and rotation
(``races/events.py``) send to the groups ``race.<id>`` / ``class.<id>`` (docs/contracts.md);
these consumers only bound and forward. Blocking reads (ORM, DynamoDB) run in worker threads
(``database_sync_to_async`` for the ORM), never on the event loop.

Scale (issue 8): the channel layer is channels_redis's pub/sub layer, so a standings change reaches
this process once, whatever the number of its consumers. The group message has only the top rows; a
viewer following a racer beyond them gets that row from the race version's board, fetched once per
process (``leaderboards/boards.py``). Each consumer sends through a ``SendGate``: a client whose
socket cannot take what it is sent is closed (4008) and dropped, without others waiting for it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from django.utils import timezone

from processors.config import get_config
from processors.domain.message import MAX_ID, MAX_ID_DIGITS
from processors.publishing import class_group, race_group, row_payload
from processors.table import LiveStandings, StoreUnavailable
from races.events import race_payload
from races.models import Race, RaceClass
from races.selectors import race_current_for_class

from . import boards
from .connections import CLOSE_TOO_SLOW, TRANSPORT_KEY, LoopOnlyDispatch, SendGate
from .selectors import LiveSnapshot, RankedLiveRow, live_snapshot_from_standings, race_get, results_table

logger = logging.getLogger(__name__)

CLOSE_BAD_REQUEST = 4400
CLOSE_NOT_FOUND = 4404
SNAPSHOT_UNAVAILABLE = "Live standings cannot be read right now; updates will follow."


def parse_racer(query_string: bytes) -> tuple[bool, int | None]:
    """(valid, racer id) from ``?racer=<id>``; absent is valid with ``None``."""
    values = parse_qs(query_string.decode("latin-1")).get("racer")
    if not values:
        return True, None
    text = values[-1]
    if not text.isdigit() or len(text) > MAX_ID_DIGITS or int(text) > MAX_ID:
        return False, None
    return True, int(text)


def _row(row: RankedLiveRow) -> dict[str, Any]:
    return row_payload(row.rank, row)


def snapshot_message(snapshot: LiveSnapshot, race: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "type": "snapshot",
        "race": race,
        "race_id": snapshot.race_id,
        "class_id": snapshot.class_id,
        "total": snapshot.total,
        "version": snapshot.version,
        "updated_at": snapshot.updated_at_ms,
        "rows": [_row(row) for row in snapshot.rows],
        "racer": _row(snapshot.racer_row) if snapshot.racer_row else None,
    }


async def own_row(event: dict[str, Any], racer_id: int | None) -> dict[str, Any] | None:
    """The subscriber's row for a ``standings.update``: in ``rows``, else from this version's board."""
    if racer_id is None:
        return None
    rows = event.get("rows") or ()
    for row in rows:
        if row.get("racer_id") == racer_id:
            return dict(row)
    race_id, version, total = event.get("race_id"), event.get("version"), event.get("total")
    if not isinstance(race_id, int) or not isinstance(version, int) or not isinstance(total, int):
        return None
    if total <= len(rows):
        return None  # the whole race is in the rows: this racer is not in it
    return await boards.get_relay().row(race_id, version, racer_id)


def _standings_common(event: dict[str, Any], top: int) -> dict[str, Any]:
    """Every field of the browser's standings message but ``racer`` (the same for all viewers)."""
    return {
        "type": "standings",
        "race_id": event.get("race_id"),
        "class_id": event.get("class_id"),
        "total": event.get("total"),
        "version": event.get("version"),
        "updated_at": event.get("updated_at"),
        "rows": list((event.get("rows") or ())[:top]),
    }


async def standings_message(event: dict[str, Any], *, top: int, racer_id: int | None) -> dict[str, Any]:
    """The bounded browser message for a publisher's ``standings.update``."""
    return {**_standings_common(event, top), "racer": await own_row(event, racer_id)}


class SharedStandingsText:
    """The JSON text of a standings message, encoded once per version for every consumer of the process.

    All of a process's viewers of a race get the same top rows; only ``racer`` differs. Encoding the
    whole message per consumer cost more than anything else in the web process at 1,000 viewers
    (py-spy, bench/bench_viewers.py), so the common part is encoded once and each consumer appends its
    own row. The text is what ``json.dumps(standings_message(...))`` gives, key for key.
    """

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self.texts: dict[tuple, str] = {}

    def head(self, event: dict[str, Any], top: int) -> str:
        key = (event.get("race_id"), event.get("version"), event.get("updated_at"), event.get("total"), top)
        text = self.texts.get(key)
        if text is None:
            text = json.dumps(_standings_common(event, top))[:-1]  # without the closing brace: ``racer`` follows
            if len(self.texts) >= self.size:
                self.texts.pop(next(iter(self.texts)))
            self.texts[key] = text
        return text

    async def text(self, event: dict[str, Any], *, top: int, racer_id: int | None) -> str:
        head = self.head(event, top)
        return f'{head}, "racer": {json.dumps(await own_row(event, racer_id))}}}'


_standings_text = SharedStandingsText()


def _race_message(race: Race) -> dict[str, Any]:
    payload = race_payload(race)
    payload["status"] = race.state_at(timezone.now())
    return payload


class Coalesced:
    """An async lookup that concurrent callers share (one call in flight per key) and that is kept ``ttl``
    seconds. A connect storm of 1,000 viewers of one race then costs one read of each kind, not 1,000, and
    holds neither Django's one database thread nor the DynamoDB threads per viewer. One cache per event
    loop (futures belong to their loop)."""

    def __init__(self, fetch: Callable[[Any], Awaitable[Any]], ttl: float) -> None:
        self.fetch = fetch
        self.ttl = ttl
        self.entries: dict[asyncio.AbstractEventLoop, dict[Any, tuple[float, asyncio.Future]]] = {}

    async def get(self, key: Any) -> Any:
        entries = self.entries.setdefault(asyncio.get_running_loop(), {})
        now = time.monotonic()
        entry = entries.get(key)
        if entry is None or (entry[1].done() and now >= entry[0]):
            if len(entries) > 1000:
                entries.clear()
            entry = entries[key] = (now + self.ttl, asyncio.ensure_future(self.fetch(key)))
        future = entry[1]
        try:
            return await asyncio.shield(future)
        except Exception:
            if entries.get(key) is entry:
                del entries[key]  # a failure is not kept: the next caller tries again
            raise


def _class_exists(class_id: int) -> bool:
    return RaceClass.objects.filter(pk=class_id).exists()


# Races change rarely (status is judged by the clock), the class's current race at a boundary: short lives.
_race = Coalesced(database_sync_to_async(lambda race_id: race_get(race_id=race_id)), ttl=2.0)
_class = Coalesced(database_sync_to_async(_class_exists), ttl=10.0)
_current = Coalesced(database_sync_to_async(lambda class_id: race_current_for_class(class_id=class_id)), ttl=1.0)
_current_now = Coalesced(database_sync_to_async(lambda class_id: race_current_for_class(class_id=class_id)), ttl=0)
_live = Coalesced(lambda race_id: sync_to_async(results_table().live_standings, thread_sensitive=False)(race_id), 0)


async def current_race(class_id: int, *, fresh: bool = False) -> Race | None:
    """The class's race running now; ``fresh`` reads it now (shared only with callers at the same moment)."""
    race = await (_current_now if fresh else _current).get(class_id)
    if race is not None and not race.starts_at <= timezone.now() < race.ends_at:
        race = await _current_now.get(class_id)  # the cached one has ended
    return race


async def _race_and_snapshot(race_id: int, top: int, racer_id: int | None) -> tuple[dict[str, Any], LiveSnapshot]:
    """The race (ORM, on the database thread) and its bounded live snapshot (DynamoDB, off it)."""
    race = await _race.get(race_id)
    if race is None:
        raise Race.DoesNotExist(race_id)
    standings: LiveStandings | None = await _live.get(race_id)
    snapshot = live_snapshot_from_standings(
        standings, race_id=race.pk, class_id=race.race_class_id, top=top, racer_id=racer_id
    )
    return _race_message(race), snapshot


class _StandingsConsumer(LoopOnlyDispatch, AsyncJsonWebsocketConsumer):
    """Shared: the ``?racer=`` parameter, bounded forwarding, version ordering, race events."""

    race_id: int | None = None
    version: int = 0

    async def websocket_connect(self, message):
        self.joined: list[str] = []
        self.top = get_config().top_rows  # ALLEYCAT_TOP_ROWS, as the publisher sends
        self.gate: SendGate | None = None
        await super().websocket_connect(message)

    async def accept(self, subprotocol=None, headers=None):
        await super().accept(subprotocol, headers)
        self.gate = SendGate(self.scope.get(TRANSPORT_KEY), self.base_send, settings.ALLEYCAT_WS_MAX_PENDING)

    async def send_json(self, content, close=False):
        """Every message after accept goes through the gate (bounded, in order)."""
        if self.gate is None:
            return await super().send_json(content, close)
        await self.send_text(await self.encode_json(content))

    async def send_text(self, text: str) -> None:
        if not await self.gate.put({"type": "websocket.send", "text": text}):
            await self._too_slow()

    async def _too_slow(self) -> None:
        if self.gate is None or self.gate.closed:
            return
        logger.info("Closing a WebSocket client that does not keep up (%s)", self.scope.get("client"))
        await self.close(code=CLOSE_TOO_SLOW)
        self.gate.drop()

    async def _refuse(self, code: int) -> None:
        # Accept first so that the browser sees the close code (a refused handshake carries none).
        await self.accept()
        await self.close(code=code)

    async def _join(self, group: str) -> None:
        await self.channel_layer.group_add(group, self.channel_name)
        self.joined.append(group)

    async def disconnect(self, code):
        if self.gate is not None:
            self.gate.stopProducing()
        for group in getattr(self, "joined", ()):
            await self.channel_layer.group_discard(group, self.channel_name)

    async def receive(self, text_data=None, bytes_data=None, **kwargs):
        """Clients only listen; anything they send (text, binary, not JSON) is ignored, never decoded."""

    async def send_snapshot(self, race_id: int) -> None:
        try:
            race, snapshot = await _race_and_snapshot(race_id, self.top, self.racer_id)
        except StoreUnavailable as exc:
            logger.warning("Snapshot of race %s unavailable: %s", race_id, exc)
            await self.send_json({"type": "error", "code": "service_unavailable", "message": SNAPSHOT_UNAVAILABLE})
            return
        except Race.DoesNotExist:
            return
        self.race_id, self.version = race_id, snapshot.version
        await self.send_json(snapshot_message(snapshot, race))

    async def forward_standings(self, event: dict[str, Any]) -> None:
        version = event.get("version") or 0
        if version <= self.version:
            return  # older than what this client has (a snapshot or a later update)
        self.version = version
        text = await _standings_text.text(event, top=self.top, racer_id=self.racer_id)
        if self.gate is None:
            await self.send(text_data=text)
        else:
            await self.send_text(text)

    async def race_finished(self, event):
        await self.send_json({"type": "race.finished", "race": event.get("race")})


class RaceStandingsConsumer(_StandingsConsumer):
    """``/ws/races/<id>/[?racer=<id>]``: snapshot on connect, then every change of the race."""

    async def connect(self):
        race_id = self.scope["url_route"]["kwargs"]["race_id"]
        valid, self.racer_id = parse_racer(self.scope.get("query_string", b""))
        if not valid or race_id > MAX_ID:
            return await self._refuse(CLOSE_BAD_REQUEST)
        # Join and accept first: the handshake never waits for a database (a storm of connects would
        # otherwise outlast daphne's handshake timeout), and no update is missed before the snapshot.
        await self._join(race_group(race_id))
        await self.accept()
        if await _race.get(race_id) is None:
            return await self.close(code=CLOSE_NOT_FOUND)
        self.race_id = race_id
        await self.send_snapshot(race_id)

    async def standings_update(self, event):
        if event.get("race_id") == self.race_id:
            await self.forward_standings(event)

    async def race_started(self, event):
        await self.send_json({"type": "race.started", "race": event.get("race")})


class ClassStandingsConsumer(_StandingsConsumer):
    """``/ws/classes/<id>/[?racer=<id>]``: follows the class's current race.

    On connect: a snapshot of the race running now (``race`` null and no rows between races).
    On ``race.started``: the event, then a snapshot of the new race. Updates of other races of
    the class are dropped, unless that race is the current one by the clock (the rotation's
    event may arrive after the first standings): then the consumer switches to it.
    """

    async def connect(self):
        self.class_id = self.scope["url_route"]["kwargs"]["class_id"]
        valid, self.racer_id = parse_racer(self.scope.get("query_string", b""))
        self.not_current: set[int] = set()
        if not valid or self.class_id > MAX_ID:
            return await self._refuse(CLOSE_BAD_REQUEST)
        await self._join(class_group(self.class_id))
        await self.accept()
        if not await _class.get(self.class_id):
            return await self.close(code=CLOSE_NOT_FOUND)
        current = await current_race(self.class_id)
        if current is None:
            await self.send_json(
                {
                    "type": "snapshot",
                    "race": None,
                    "race_id": None,
                    "class_id": self.class_id,
                    "total": 0,
                    "version": 0,
                    "updated_at": None,
                    "rows": [],
                    "racer": None,
                }
            )
            return
        await self.send_snapshot(current.pk)

    async def standings_update(self, event):
        race_id = event.get("race_id")
        if race_id != self.race_id:
            if race_id in self.not_current or not await self._is_current(race_id):
                return
            await self.send_snapshot(race_id)
            return
        await self.forward_standings(event)

    async def _is_current(self, race_id: Any) -> bool:
        current = await current_race(self.class_id, fresh=True)
        if current is not None and current.pk == race_id:
            return True
        if len(self.not_current) > 100:
            self.not_current.clear()
        self.not_current.add(race_id)
        return False

    async def race_started(self, event):
        race = event.get("race") or {}
        await self.send_json({"type": "race.started", "race": race})
        self.not_current.clear()
        race_id = race.get("id")
        if isinstance(race_id, int) and race_id != self.race_id:
            await self.send_snapshot(race_id)
