"""Writes of the schedule: rotation, one-off races and staff actions.

Every function is keyword-only; admin actions, the Celery task and commands all call these.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from .events import race_event_send
from .integrations import (
    race_identities_publish_on_commit,
    race_identities_republish,
    races_settle_quiet,
)
from .models import Race, RaceClass, RaceSchedule, ResultVoid

logger = logging.getLogger(__name__)

# Beat runs rotation every 5 minutes; rotation creates every race starting before the next
# run (and one more), so races shorter than 5 minutes still follow each other without gaps.
ROTATION_INTERVAL = timedelta(minutes=5)

RACE_OVERLAP_ERROR = "This race overlaps another race of the same class."


@dataclass
class RotationResult:
    finished: list[int] = field(default_factory=list)
    started: list[int] = field(default_factory=list)
    created: list[int] = field(default_factory=list)
    cancelled: list[int] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.finished or self.started or self.created or self.cancelled)


def floor_to_boundary(instant: datetime, minutes: int = 5) -> datetime:
    """The wall-clock boundary (…:00, …:05, …) at or before ``instant``, in UTC."""
    instant = instant.astimezone(UTC)
    floored = instant.replace(second=0, microsecond=0)
    return floored - timedelta(minutes=floored.minute % minutes)


def _send_after_commit(kind: str, race_ids: list[int]) -> None:
    def send() -> None:
        for race in Race.objects.filter(pk__in=race_ids):
            race_event_send(kind=kind, race=race)

    if race_ids:
        transaction.on_commit(send)


def _ensure_race(*, schedule: RaceSchedule, starts_at: datetime, ends_at: datetime, now: datetime) -> Race | None:
    """Create the schedule's race for one window unless it exists, was cancelled, or clashes."""
    if Race.objects.filter(schedule=schedule, starts_at=starts_at).exists():
        return None  # already created (or cancelled by staff: never resurrect it)
    if Race.objects.overlapping(schedule.race_class_id, starts_at, ends_at).exists():
        return None  # a one-off race (or another schedule) holds this slot
    race = Race(race_class_id=schedule.race_class_id, schedule=schedule, starts_at=starts_at, ends_at=ends_at)
    race.status = race.state_at(now)
    try:
        with transaction.atomic():
            race.save()
    except IntegrityError:
        return None  # a concurrent rotation created it first
    return race


def race_rotate(*, now: datetime | None = None) -> RotationResult:
    """Bring the races in line with the clock. Idempotent; safe to run late or twice.

    1. finish races whose end has passed; 2. cancel future races of disabled schedules or
    classes; 3. for each enabled schedule create the race of the current window (if it is
    running now) and every window starting before the next rotation, plus one; 4. mark
    races running now as active. Never creates a race that has already ended.
    """
    now = now or timezone.now()
    result = RotationResult()
    with transaction.atomic():
        ended = Race.objects.select_for_update().filter(
            status__in=[Race.Status.SCHEDULED, Race.Status.ACTIVE], ends_at__lte=now
        )
        result.finished = list(ended.values_list("pk", flat=True))
        Race.objects.filter(pk__in=result.finished).update(status=Race.Status.FINISHED)

        stopped = Race.objects.filter(status=Race.Status.SCHEDULED, starts_at__gt=now, schedule__isnull=False).filter(
            Q(schedule__enabled=False) | Q(race_class__enabled=False)
        )
        result.cancelled = list(stopped.values_list("pk", flat=True))
        Race.objects.filter(pk__in=result.cancelled).update(status=Race.Status.CANCELLED)

        schedules = RaceSchedule.objects.select_related("race_class").filter(enabled=True, race_class__enabled=True)
        horizon = now + ROTATION_INTERVAL
        for schedule in schedules:
            windows: list[tuple[datetime, datetime]] = []
            current = schedule.window_at(now)
            if current:
                windows.append(current)
            upcoming = schedule.next_window_after(now)
            while upcoming and upcoming[0] <= horizon:
                windows.append(upcoming)
                upcoming = schedule.next_window_after(upcoming[0])
            if upcoming:
                windows.append(upcoming)
            for starts_at, ends_at in windows:
                race = _ensure_race(schedule=schedule, starts_at=starts_at, ends_at=ends_at, now=now)
                if race:
                    result.created.append(race.pk)
                    if race.status == Race.Status.ACTIVE:
                        result.started.append(race.pk)

        to_start = Race.objects.running_at(now).filter(status=Race.Status.SCHEDULED)
        started = list(to_start.values_list("pk", flat=True))
        Race.objects.filter(pk__in=started).update(status=Race.Status.ACTIVE)
        result.started.extend(started)

        _send_after_commit("race.finished", result.finished)
        _send_after_commit("race.started", result.started)
        # Every race not yet past its settle deadline, not only the changed ones: a publish that
        # failed earlier (DynamoDB down) is repaired here, and the pipeline always knows the schedule.
        transaction.on_commit(lambda: race_identities_republish(now=now))
        transaction.on_commit(races_settle_quiet)
    if result.changed:
        logger.info(
            "Rotation at %s: %d finished, %d started, %d created, %d cancelled",
            now.isoformat(),
            len(result.finished),
            len(result.started),
            len(result.created),
            len(result.cancelled),
        )
    return result


@transaction.atomic
def race_create(*, race_class: RaceClass, starts_at: datetime, ends_at: datetime) -> Race:
    """A one-off race added by staff. Rotation leaves its slot alone."""
    race = Race(race_class=race_class, starts_at=starts_at, ends_at=ends_at, schedule=None)
    race.full_clean()
    race.save()
    race_identities_publish_on_commit([race.pk])
    return race


@transaction.atomic
def race_schedule_create(
    *,
    race_class: RaceClass,
    starts_at: datetime,
    race_minutes: int = 5,
    ends_at: datetime | None = None,
    enabled: bool = True,
) -> RaceSchedule:
    schedule = RaceSchedule(
        race_class=race_class, starts_at=starts_at, race_minutes=race_minutes, ends_at=ends_at, enabled=enabled
    )
    schedule.full_clean()
    schedule.save()
    return schedule


@transaction.atomic
def race_start_now(*, race: Race, now: datetime | None = None) -> Race:
    """Start a scheduled race now, keeping its length."""
    now = (now or timezone.now()).replace(microsecond=0)
    if race.status != Race.Status.SCHEDULED:
        raise ValidationError(f"Only a scheduled race can be started now (this one is {race.status}).")
    length = race.duration
    race.starts_at, race.ends_at = now, now + length
    race.status = Race.Status.ACTIVE
    race.full_clean()
    race.save()
    race_identities_publish_on_commit([race.pk])
    _send_after_commit("race.started", [race.pk])
    return race


@transaction.atomic
def race_finish(*, race: Race, now: datetime | None = None) -> Race:
    """End a race now (or mark an ended race finished)."""
    now = now or timezone.now()
    if race.status in (Race.Status.FINISHED, Race.Status.CANCELLED):
        raise ValidationError(f"This race is already {race.status}.")
    if race.starts_at > now:
        raise ValidationError("A race that has not started cannot be finished; cancel it instead.")
    race.ends_at = min(race.ends_at, now)
    race.status = Race.Status.FINISHED
    race.save(update_fields=["ends_at", "status"])
    race_identities_publish_on_commit([race.pk])
    _send_after_commit("race.finished", [race.pk])
    return race


@transaction.atomic
def race_cancel(*, race: Race) -> Race:
    if race.status == Race.Status.FINISHED:
        raise ValidationError("A finished race cannot be cancelled.")
    was_running = race.status == Race.Status.ACTIVE
    race.status = Race.Status.CANCELLED
    race.save(update_fields=["status"])
    race_identities_publish_on_commit([race.pk])
    if was_running:
        _send_after_commit("race.finished", [race.pk])
    return race


@transaction.atomic
def race_update(*, race: Race, race_class: RaceClass, starts_at: datetime, ends_at: datetime) -> Race:
    """Staff change a race's class or window (the admin's change form).

    A race that is over (finished, cancelled, or ended by the clock) is history: its results
    belong to that window. A race running now keeps its class and start (bikes are sending to
    it); only its end may move, and not into the past. ``status`` is never set here: rotation
    and the start/finish/cancel services own it.
    """
    now = timezone.now()
    current = Race.objects.select_for_update().get(pk=race.pk)
    if current.status in (Race.Status.FINISHED, Race.Status.CANCELLED) or current.ends_at <= now:
        raise ValidationError(f"A race that is {current.state_at(now)} cannot be changed.")
    if current.starts_at <= now:
        if race_class.pk != current.race_class_id or starts_at != current.starts_at:
            raise ValidationError("A running race keeps its class and start; only its end can move.")
        if ends_at <= now:
            raise ValidationError("Use 'Finish selected races now' to end a running race.")
    current.race_class, current.starts_at, current.ends_at = race_class, starts_at, ends_at
    current.full_clean()
    current.save(update_fields=["race_class", "starts_at", "ends_at"])
    # The pipeline checks readings against the race's identity: publish the change (after commit).
    race_identities_publish_on_commit([current.pk])
    return current


# --- staff corrections: void a racer's result of a race ------------------------------------

RESULTS_VERSION_KEY = "leaderboards:results-version:{race_id}"


def results_version(race_id: int) -> int:
    """Bumped when a race's results change after settling (a void): part of the results cache key."""
    from django.core.cache import cache

    return int(cache.get(RESULTS_VERSION_KEY.format(race_id=race_id), 0))


def _remaining_class_results(table, *, racer_id: int, class_id: int, voided_race_id: int) -> list:
    results, start_key = [], None
    while True:
        page = table.racer_results(racer_id, limit=1000, start_key=start_key)
        results += [r for r in page.items if r.class_id == class_id and r.race_id != voided_race_id]
        if page.last_key is None:
            return results
        start_key = page.last_key


def result_void(*, race: Race, racer_id: int, reason: str, user=None, now: datetime | None = None) -> ResultVoid:
    """Take a racer's result out of a settled race, recompute what it fed, and log who and why.

    1. the result leaves the race's results (a void marker in the table keeps it; the racer stays
       "finished" in the live item, so is not listed as DNF either);
    2. the racer's personal best in the class (their all-time leaderboard item) is recomputed from
       their remaining results of the class, or removed when none is left;
    3. their row of the class's "All time" history is rebuilt from the per-second outputs of those
       remaining races (seconds of races they did not finish are not results: they are left out);
    4. a ``ResultVoid`` row keeps who, why and the figures before and after. Voiding again after
       a store failure completes the steps that did not run.
    """
    from django.core.cache import cache

    from processors.clients import aws_client
    from processors.config import get_config
    from processors.history_store import replace_racer_history
    from processors.table import PersonalBest, StoreUnavailable, get_results_table

    reason = (reason or "").strip()
    if not reason:
        raise ValidationError("Give a reason: it is kept with the void.")
    now = now or timezone.now()
    if ResultVoid.objects.filter(race=race, racer_id=racer_id).exists():
        raise ValidationError(f"The result of racer {racer_id} in race {race.pk} is already voided.")
    table = get_results_table()
    try:
        # Only once the pipeline has settled the race: its reconciliation (``settle_race``) writes the
        # result of every finished racer it finds missing, so a void before it would be undone.
        identity = table.race_identity(race.pk)
        if race.status == Race.Status.CANCELLED or identity is None or not identity.settled:
            raise ValidationError("Results can be voided once the race has settled (its results are final).")
        result = table.final_result(race.pk, racer_id)
        if result is None:
            result = table.voided_result(race.pk, racer_id)  # voided before, but a step failed: complete it
            if result is None:
                raise ValidationError(f"Racer {racer_id} has no result in race {race.pk}.")
        class_id = result.class_id
        best_before = table.personal_best(class_id, racer_id)
        table.void_final_result(result, voided_at_ms=int(now.timestamp() * 1000))

        remaining = _remaining_class_results(table, racer_id=racer_id, class_id=class_id, voided_race_id=race.pk)
        recomputed = None
        if remaining:
            top = max(remaining, key=lambda r: (r.score, -r.race_id))  # ties: the earlier race keeps the record
            recomputed = PersonalBest(class_id, racer_id, top.name, top.score, top.race_id)
        best_after = recomputed
        for _attempt in range(10):  # finals may store a better best meanwhile: read again, keep the better
            current = table.personal_best(class_id, racer_id)
            best_after = recomputed
            if current is not None and current.race_id != race.pk:
                best_after = current if recomputed is None else max(current, recomputed, key=_best_order)
            if current == best_after or table.replace_personal_best(
                class_id, racer_id, expected=current, best=best_after
            ):
                break

        seconds: dict[int, float] = {}
        for other in remaining:
            for second, output in enumerate(table.racer_race_seconds(other.race_id, racer_id), start=1):
                if output is not None and output > seconds.get(second, float("-inf")):
                    seconds[second] = output
        replace_racer_history(aws_client("s3"), get_config().history_bucket, class_id, racer_id, seconds)
    except StoreUnavailable as error:
        raise ValidationError(f"The results store is unavailable ({error}); try again.") from error
    # Settled results are cached: a new version makes the next read go to the table.
    cache.set(RESULTS_VERSION_KEY.format(race_id=race.pk), results_version(race.pk) + 1, None)
    void = ResultVoid.objects.create(
        race=race,
        racer_id=racer_id,
        racer_name=result.name,
        score=result.score,
        best_before=best_before.score if best_before else None,
        best_after=best_after.score if best_after else None,
        reason=reason,
        voided_by=user,
    )
    logger.info("Result voided: race %s racer %s by %s: %s", race.pk, racer_id, user, reason)
    return void


def _best_order(best) -> tuple[float, int]:
    return (best.score, -best.race_id)
