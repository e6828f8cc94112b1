"""Race lifecycle events pushed to the Channels groups of the race and its class (``processors.publishing``).

Message shapes are in docs/contracts.md. A push that fails (Redis down) is logged and
dropped: rotation must not fail because nobody can be told about it.
"""

from __future__ import annotations

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from processors.publishing import class_group, race_group

from .models import Race

logger = logging.getLogger(__name__)


def race_payload(race: Race) -> dict:
    return {
        "id": race.pk,
        "class_id": race.race_class_id,
        "starts_at": race.starts_at.isoformat().replace("+00:00", "Z"),
        "ends_at": race.ends_at.isoformat().replace("+00:00", "Z"),
        "status": race.status,
    }


def race_event_send(*, kind: str, race: Race) -> bool:
    """Send ``race.started`` or ``race.finished`` to the class and race groups. True if sent."""
    if kind not in ("race.started", "race.finished"):
        raise ValueError(f"unknown race event {kind!r}")
    layer = get_channel_layer()
    if layer is None:
        return False
    message = {"type": kind, "race": race_payload(race)}
    try:
        async_to_sync(layer.group_send)(class_group(race.race_class_id), message)
        async_to_sync(layer.group_send)(race_group(race.pk), message)
    except Exception as error:  # noqa: BLE001 - any layer failure is logged, never fatal
        logger.warning("Could not push %s for race %s: %s", kind, race.pk, error)
        return False
    return True
