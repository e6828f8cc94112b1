"""Reads of the schedule."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Prefetch
from django.utils import timezone

from .models import Race, RaceClass


def race_current_for_class(*, class_id: int, now: datetime | None = None) -> Race | None:
    """The race of the class running at ``now`` (by the clock), or None."""
    now = now or timezone.now()
    return Race.objects.running_at(now).filter(race_class_id=class_id).order_by("starts_at").first()


def race_next_for_class(*, class_id: int, now: datetime | None = None) -> Race | None:
    now = now or timezone.now()
    return Race.objects.not_cancelled().filter(race_class_id=class_id, starts_at__gt=now).order_by("starts_at").first()


@dataclass(frozen=True)
class ClassWithRaces:
    race_class: RaceClass
    current: Race | None
    next: Race | None


def race_class_list_with_current(*, now: datetime | None = None) -> list[ClassWithRaces]:
    """Enabled classes in display order, each with its current and next race: two queries."""
    now = now or timezone.now()
    upcoming = Race.objects.not_cancelled().filter(ends_at__gt=now).order_by("starts_at")
    classes = RaceClass.objects.filter(enabled=True).prefetch_related(
        Prefetch("races", queryset=upcoming, to_attr="upcoming_races")
    )
    result = []
    for race_class in classes:
        current = next((r for r in race_class.upcoming_races if r.starts_at <= now < r.ends_at), None)
        following = next((r for r in race_class.upcoming_races if r.starts_at > now), None)
        result.append(ClassWithRaces(race_class=race_class, current=current, next=following))
    return result


def seconds_remaining(*, race: Race, now: datetime | None = None) -> int:
    now = now or timezone.now()
    return max(0, int((race.ends_at - now).total_seconds()))
