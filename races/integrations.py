"""The races app's one door to the pipeline's table: race identities (A0).

Each race's identity (id, class, start, end, length, cancelled, settle deadline) is published to
the table when a race is created, changed or cancelled, after the transaction commits
(``race_identities_publish_on_commit``). Rotation republishes every race that has not yet passed
its settle deadline, and ``manage.py publish_races`` (run by ``make run`` at start) republishes
current and future races, so an existing database converges and a failed publish is repaired
within one rotation. Publishing never raises: the schedule must not fail because DynamoDB is down.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from processors.table import RaceIdentity, get_results_table

from .models import Race

logger = logging.getLogger(__name__)


def settle_grace() -> timedelta:
    return timedelta(seconds=settings.ALLEYCAT_SETTLE_GRACE_SECONDS)


def _ms(instant: datetime) -> int:
    return int(instant.timestamp() * 1000)


def race_identity_of(race: Race) -> RaceIdentity:
    return RaceIdentity(
        race_id=race.pk,
        class_id=race.race_class_id,
        starts_at_ms=_ms(race.starts_at),
        ends_at_ms=_ms(race.ends_at),
        length_s=max(1, round((race.ends_at - race.starts_at).total_seconds())),
        settle_at_ms=_ms(race.ends_at + settle_grace()),
        cancelled=race.status == Race.Status.CANCELLED,
    )


def race_identities_publish(*, races: Iterable[Race]) -> int:
    """Publish the identities of ``races``. Returns how many were written (settled races are left alone)."""
    if not settings.ALLEYCAT_PUBLISH_RACES:
        return 0
    published = 0
    for race in races:
        try:
            if get_results_table().put_race_identity(race_identity_of(race)):
                published += 1
            else:
                logger.info("race %s has settled: its identity is not changed any more", race.pk)
        except Exception as error:  # noqa: BLE001 - DynamoDB down or not set up: rotation publishes again
            # The others would fail the same way (and each after its retries): stop here.
            logger.warning("could not publish race %s (rotation publishes again): %s", race.pk, error)
            break
    return published


def race_identities_publish_on_commit(race_ids: Iterable[int]) -> None:
    """Publish these races' identities once the current transaction commits (as they were committed)."""
    ids = sorted(set(race_ids))
    if ids and settings.ALLEYCAT_PUBLISH_RACES:
        transaction.on_commit(lambda: race_identities_publish(races=Race.objects.filter(pk__in=ids)))


def races_to_publish(*, now: datetime | None = None) -> list[Race]:
    """Every race that has not passed its settle deadline (current and future, cancelled ones too)."""
    now = now or timezone.now()
    return list(Race.objects.filter(ends_at__gt=now - settle_grace()).order_by("starts_at"))


def race_identities_republish(*, now: datetime | None = None) -> int:
    """Publish every race that has not passed its settle deadline (rotation, ``publish_races``)."""
    if not settings.ALLEYCAT_PUBLISH_RACES:
        return 0
    return race_identities_publish(races=races_to_publish(now=now))


def race_identity_get(*, race_id: int) -> RaceIdentity | None:
    """The race's identity as the pipeline sees it (settled or not). Errors are the table module's."""
    return get_results_table().race_identity(race_id)
