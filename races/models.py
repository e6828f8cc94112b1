"""The schedule: classes, racers, schedules and races (SQL database).

Race times are timezone-aware and stored in UTC. A race's *state* at an instant is derived
from the clock (see ``Race.state_at``); ``status`` is what rotation last recorded, so a
reader never trusts a stale status over the clock.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

MIN_RACE_MINUTES = 1
MAX_RACE_MINUTES = 60


class RaceClass(models.Model):
    name = models.CharField(max_length=80, unique=True)
    description = models.TextField(blank=True, help_text="Shown to racers on the class list.")
    display_order = models.PositiveIntegerField(default=0, help_text="Lower numbers are listed first.")
    enabled = models.BooleanField(default=True, help_text="A disabled class gets no new races.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("display_order", "name")
        verbose_name = "race class"
        verbose_name_plural = "race classes"

    def __str__(self) -> str:
        return self.name


class Racer(models.Model):
    racer_id = models.PositiveIntegerField(
        primary_key=True, help_text="The racer id the bike sends in every message (racerId)."
    )
    name = models.CharField(max_length=64, help_text="Display name on leaderboards (at most 64 characters).")
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="racer",
        help_text="Optional account that may ride as this racer on the ride page.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("racer_id",)

    def __str__(self) -> str:
        return f"{self.name} (#{self.racer_id})"


class RaceSchedule(models.Model):
    race_class = models.ForeignKey(RaceClass, on_delete=models.CASCADE, related_name="schedules")
    starts_at = models.DateTimeField(
        help_text="First race starts here; later races follow back to back. Must be on a whole minute."
    )
    ends_at = models.DateTimeField(null=True, blank=True, help_text="No race starts at or after this. Empty = forever.")
    race_minutes = models.PositiveSmallIntegerField(
        default=5,
        validators=[MinValueValidator(MIN_RACE_MINUTES), MaxValueValidator(MAX_RACE_MINUTES)],
        help_text="Length of each race in minutes (1–60).",
    )
    enabled = models.BooleanField(default=True, help_text="A disabled schedule gets no new races.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("race_class__display_order", "starts_at")
        constraints = [
            models.CheckConstraint(
                condition=Q(race_minutes__gte=MIN_RACE_MINUTES) & Q(race_minutes__lte=MAX_RACE_MINUTES),
                name="schedule_race_minutes_range",
            ),
            models.CheckConstraint(
                condition=Q(ends_at__isnull=True) | Q(ends_at__gt=models.F("starts_at")),
                name="schedule_ends_after_start",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.race_class} every {self.race_minutes} min from {self.starts_at:%Y-%m-%d %H:%M}"

    @property
    def race_length(self) -> timedelta:
        return timedelta(minutes=self.race_minutes)

    def clean(self) -> None:
        errors = {}
        if self.starts_at and (self.starts_at.second or self.starts_at.microsecond):
            errors["starts_at"] = "Start on a whole minute (seconds = 0)."
        if self.starts_at and self.ends_at and self.ends_at <= self.starts_at:
            errors["ends_at"] = "The schedule must end after it starts."
        if errors:
            raise ValidationError(errors)

    def window_at(self, instant: datetime) -> tuple[datetime, datetime] | None:
        """The race window [start, end) of this schedule containing ``instant``, or None.

        Windows are back to back from ``starts_at`` in steps of ``race_minutes``, computed in
        UTC so a daylight-saving change neither skips nor repeats a window.
        """
        if instant < self.starts_at:
            return None
        length = self.race_length
        index = (instant - self.starts_at) // length
        start = self.starts_at + index * length
        if self.ends_at and start >= self.ends_at:
            return None
        return start, start + length

    def next_window_after(self, instant: datetime) -> tuple[datetime, datetime] | None:
        """The first window starting strictly after ``instant``."""
        if instant < self.starts_at:
            start = self.starts_at
        else:
            index = (instant - self.starts_at) // self.race_length + 1
            start = self.starts_at + index * self.race_length
        if self.ends_at and start >= self.ends_at:
            return None
        return start, start + self.race_length


class RaceQuerySet(models.QuerySet):
    def not_cancelled(self) -> RaceQuerySet:
        return self.exclude(status=Race.Status.CANCELLED)

    def running_at(self, instant: datetime) -> RaceQuerySet:
        """Races whose window contains ``instant`` (by the clock, whatever their status)."""
        return self.not_cancelled().filter(starts_at__lte=instant, ends_at__gt=instant)

    def overlapping(self, race_class_id: int, starts_at: datetime, ends_at: datetime) -> RaceQuerySet:
        return self.not_cancelled().filter(race_class_id=race_class_id, starts_at__lt=ends_at, ends_at__gt=starts_at)


class Race(models.Model):
    class Status(models.TextChoices):
        SCHEDULED = "scheduled", "Scheduled"
        ACTIVE = "active", "Active"
        FINISHED = "finished", "Finished"
        CANCELLED = "cancelled", "Cancelled"

    race_class = models.ForeignKey(RaceClass, on_delete=models.CASCADE, related_name="races")
    schedule = models.ForeignKey(
        RaceSchedule,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="races",
        help_text="Empty for a one-off race added by staff.",
    )
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.SCHEDULED)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = RaceQuerySet.as_manager()

    class Meta:
        ordering = ("-starts_at", "race_class_id")
        get_latest_by = "starts_at"
        indexes = [models.Index(fields=["race_class", "starts_at"]), models.Index(fields=["status", "ends_at"])]
        constraints = [
            models.CheckConstraint(condition=Q(ends_at__gt=models.F("starts_at")), name="race_ends_after_start"),
            # Rotation may run twice at once: the database refuses a second race in the same slot.
            models.UniqueConstraint(
                fields=["race_class", "starts_at"],
                condition=~Q(status="cancelled"),
                name="race_unique_class_start",
            ),
        ]

    def __str__(self) -> str:
        local = timezone.localtime(self.starts_at)
        return f"{self.race_class} #{self.pk} at {local:%Y-%m-%d %H:%M}"

    @property
    def duration(self) -> timedelta:
        return self.ends_at - self.starts_at

    def state_at(self, instant: datetime) -> str:
        """The race's status at ``instant``, from the clock (cancelled stays cancelled)."""
        if self.status == self.Status.CANCELLED:
            return self.status
        if instant < self.starts_at:
            return self.Status.SCHEDULED
        if instant < self.ends_at:
            return self.Status.ACTIVE
        return self.Status.FINISHED

    def clean(self) -> None:
        errors = {}
        if self.starts_at and self.ends_at:
            if self.ends_at <= self.starts_at:
                errors["ends_at"] = "A race must end after it starts."
            elif self.ends_at - self.starts_at > timedelta(minutes=MAX_RACE_MINUTES):
                errors["ends_at"] = f"A race lasts at most {MAX_RACE_MINUTES} minutes."
            elif self.ends_at - self.starts_at < timedelta(minutes=MIN_RACE_MINUTES):
                errors["ends_at"] = f"A race lasts at least {MIN_RACE_MINUTES} minute."
            elif self.race_class_id and self.status != self.Status.CANCELLED:
                clash = Race.objects.overlapping(self.race_class_id, self.starts_at, self.ends_at)
                if self.pk:
                    clash = clash.exclude(pk=self.pk)
                other = clash.first()
                if other:
                    errors["starts_at"] = f"Overlaps {other} ({other.starts_at:%H:%M}–{other.ends_at:%H:%M} UTC)."
        if errors:
            raise ValidationError(errors)


class ResultVoid(models.Model):
    """Staff voided a racer's result of a race (``races.services.result_void``): who, why, and what changed.

    The result itself lives in DynamoDB; this row is the audit log, shown in the admin.
    """

    race = models.ForeignKey(Race, on_delete=models.PROTECT, related_name="voids")
    racer_id = models.PositiveIntegerField()
    racer_name = models.CharField(max_length=64)
    score = models.FloatField(help_text="The voided result's score.")
    best_before = models.FloatField(null=True, blank=True, help_text="Personal best in the class before.")
    best_after = models.FloatField(null=True, blank=True, help_text="Recomputed from the remaining results.")
    reason = models.TextField()
    voided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    voided_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("-voided_at",)
        verbose_name = "voided result"

    def __str__(self) -> str:
        return f"Race {self.race_id}, racer {self.racer_name} (#{self.racer_id})"
