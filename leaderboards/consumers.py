"""WebSocket consumers: live standings of a race (``/ws/races/<id>/``) and of a class's current
race (``/ws/classes/<id>/``). Browser message formats: README.md, "Live messages".

Thin by design: the publisher (``processors/handlers/publisher.py``) and rotation
(``races/events.py``) send to the groups ``race.<id>`` / ``class.<id>`` (docs/contracts.md);
these consumers only bound and forward. Blocking reads (ORM, DynamoDB) run in worker threads.
"""

from __future__ import annotations

import logging
import os
from typing import Any
from urllib.parse import parse_qs

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.utils import timezone

from processors.publishing import row_payload
from processors.table import StoreUnavailable
from races.events import class_group_name, race_group_name, race_payload
from races.models import Race, RaceClass
from races.selectors import race_current_for_class

from .selectors import LiveSnapshot, RankedLiveRow, live_snapshot_get, race_get

logger = logging.getLogger(__name__)

MAX_ID = 2**53 - 1
CLOSE_BAD_REQUEST = 4400
CLOSE_NOT_FOUND = 4404
SNAPSHOT_UNAVAILABLE = "Live standings cannot be read right now; updates will follow."


def top_rows() -> int:
    """Rows per browser message (``ALLEYCAT_TOP_ROWS``, as the publisher uses; default 100)."""
    try:
        return max(1, int(os.environ.get("ALLEYCAT_TOP_ROWS") or 100))
    except ValueError:
        return 100


def parse_racer(query_string: bytes) -> tuple[bool, int | None]:
    """(valid, racer id) from ``?racer=<id>``; absent is valid with ``None``."""
    values = parse_qs(query_string.decode("latin-1")).get("racer")
    if not values:
        return True, None
    text = values[-1]
    if not text.isdigit() or len(text) > 16 or int(text) > MAX_ID:
        return False, None
    return True, int(text)


def _row(row: RankedLiveRow) -> dict[str, Any]:
    return row_payload(row.rank, row)


def snapshot_message(snapshot: LiveSnapshot, race: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "type": "snapshot",
        "race": race,
        "raceId": snapshot.race_id,
        "classId": snapshot.class_id,
        "total": snapshot.total,
        "version": snapshot.version,
        "updatedAt": snapshot.updated_at_ms,
        "rows": [_row(row) for row in snapshot.rows],
        "racer": _row(snapshot.racer_row) if snapshot.racer_row else None,
    }


_TAIL_FIELDS = ("rank", "racerId", "name", "score", "second", "output", "finished")


def own_row(event: dict[str, Any], racer_id: int | None) -> dict[str, Any] | None:
    """The subscriber's row from a ``standings.update``: in ``rows``, else from the compact ``tail``."""
    if racer_id is None:
        return None
    for row in event.get("rows") or ():
        if row.get("racerId") == racer_id:
            return dict(row)
    for entry in event.get("tail") or ():
        if len(entry) == len(_TAIL_FIELDS) and entry[1] == racer_id:
            return dict(zip(_TAIL_FIELDS, entry, strict=True))
    return None


def standings_message(event: dict[str, Any], *, top: int, racer_id: int | None) -> dict[str, Any]:
    """The bounded browser message for a publisher's ``standings.update``: never the ``tail``."""
    return {
        "type": "standings",
        "raceId": event.get("raceId"),
        "classId": event.get("classId"),
        "total": event.get("total"),
        "version": event.get("version"),
        "updatedAt": event.get("updatedAt"),
        "rows": list((event.get("rows") or ())[:top]),
        "racer": own_row(event, racer_id),
    }


def _race_message(race: Race) -> dict[str, Any]:
    payload = race_payload(race)
    payload["status"] = race.state_at(timezone.now())
    return payload


async def _race_and_snapshot(race_id: int, top: int, racer_id: int | None) -> tuple[dict[str, Any], LiveSnapshot]:
    """The race (ORM, on the database thread) and its bounded live snapshot (DynamoDB, off it)."""
    race = await database_sync_to_async(race_get)(race_id=race_id)
    if race is None:
        raise Race.DoesNotExist(race_id)
    snapshot = await sync_to_async(live_snapshot_get, thread_sensitive=False)(race=race, top=top, racer_id=racer_id)
    return _race_message(race), snapshot


class _StandingsConsumer(AsyncJsonWebsocketConsumer):
    """Shared: the ``?racer=`` parameter, bounded forwarding, version ordering, race events."""

    race_id: int | None = None
    version: int = 0

    async def websocket_connect(self, message):
        self.joined: list[str] = []
        self.top = top_rows()
        await super().websocket_connect(message)

    async def _refuse(self, code: int) -> None:
        # Accept first so that the browser sees the close code (a refused handshake carries none).
        await self.accept()
        await self.close(code=code)

    async def _join(self, group: str) -> None:
        await self.channel_layer.group_add(group, self.channel_name)
        self.joined.append(group)

    async def disconnect(self, code):
        for group in getattr(self, "joined", ()):
            await self.channel_layer.group_discard(group, self.channel_name)

    async def receive_json(self, content, **kwargs):
        """Clients only listen; anything they send is ignored."""

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
        await self.send_json(standings_message(event, top=self.top, racer_id=self.racer_id))

    async def race_finished(self, event):
        await self.send_json({"type": "race.finished", "race": event.get("race")})


class RaceStandingsConsumer(_StandingsConsumer):
    """``/ws/races/<id>/[?racer=<id>]``: snapshot on connect, then every change of the race."""

    async def connect(self):
        race_id = self.scope["url_route"]["kwargs"]["race_id"]
        valid, self.racer_id = parse_racer(self.scope.get("query_string", b""))
        if not valid or race_id > MAX_ID:
            return await self._refuse(CLOSE_BAD_REQUEST)
        if not await database_sync_to_async(Race.objects.filter(pk=race_id).exists)():
            return await self._refuse(CLOSE_NOT_FOUND)
        self.race_id = race_id
        await self._join(race_group_name(race_id))
        await self.accept()
        await self.send_snapshot(race_id)

    async def standings_update(self, event):
        if event.get("raceId") == self.race_id:
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
        if not await database_sync_to_async(RaceClass.objects.filter(pk=self.class_id).exists)():
            return await self._refuse(CLOSE_NOT_FOUND)
        await self._join(class_group_name(self.class_id))
        await self.accept()
        current = await database_sync_to_async(race_current_for_class)(class_id=self.class_id)
        if current is None:
            await self.send_json(
                {
                    "type": "snapshot",
                    "race": None,
                    "raceId": None,
                    "classId": self.class_id,
                    "total": 0,
                    "version": 0,
                    "updatedAt": None,
                    "rows": [],
                    "racer": None,
                }
            )
            return
        await self.send_snapshot(current.pk)

    async def standings_update(self, event):
        race_id = event.get("raceId")
        if race_id != self.race_id:
            if race_id in self.not_current or not await self._is_current(race_id):
                return
            await self.send_snapshot(race_id)
            return
        await self.forward_standings(event)

    async def _is_current(self, race_id: Any) -> bool:
        current = await database_sync_to_async(race_current_for_class)(class_id=self.class_id)
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
