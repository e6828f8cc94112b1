"""races.rotate: boundaries, idempotence, catch-up, daylight saving, disabled and one-off races."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from races.models import Race
from races.services import floor_to_boundary, race_rotate
from races.tasks import rotate
from tests.factories import RaceClassFactory, RaceFactory, RaceScheduleFactory

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def races_of(schedule):
    return list(Race.objects.filter(schedule=schedule).order_by("starts_at").values_list("starts_at", "status"))


def test_rotation_at_a_boundary_activates_current_and_schedules_next():
    schedule = RaceScheduleFactory(starts_at=T0 - timedelta(hours=1))
    result = race_rotate(now=T0)
    assert races_of(schedule) == [
        (T0, Race.Status.ACTIVE),
        (T0 + timedelta(minutes=5), Race.Status.SCHEDULED),
        (T0 + timedelta(minutes=10), Race.Status.SCHEDULED),
    ]
    assert len(result.created) == 3
    assert len(result.started) == 1


def test_rotation_just_before_boundary_keeps_current_race():
    schedule = RaceScheduleFactory(starts_at=T0 - timedelta(hours=1))
    race_rotate(now=T0 - timedelta(seconds=1))
    current = Race.objects.get(schedule=schedule, status=Race.Status.ACTIVE)
    assert current.starts_at == T0 - timedelta(minutes=5)
    assert current.ends_at == T0


def test_next_rotation_finishes_the_previous_race_and_starts_the_next():
    schedule = RaceScheduleFactory(starts_at=T0)
    race_rotate(now=T0)
    result = race_rotate(now=T0 + timedelta(minutes=5))
    statuses = dict(Race.objects.filter(schedule=schedule).values_list("starts_at", "status"))
    assert statuses[T0] == Race.Status.FINISHED
    assert statuses[T0 + timedelta(minutes=5)] == Race.Status.ACTIVE
    assert statuses[T0 + timedelta(minutes=10)] == Race.Status.SCHEDULED
    assert len(result.finished) == 1 and len(result.started) == 1


def test_two_runs_at_the_same_instant_change_nothing():
    schedule = RaceScheduleFactory(starts_at=T0)
    race_rotate(now=T0 + timedelta(seconds=3))
    before = races_of(schedule)
    second = race_rotate(now=T0 + timedelta(seconds=3))
    assert not second.changed
    assert races_of(schedule) == before


def test_catch_up_after_an_hour_of_downtime_creates_no_past_races():
    schedule = RaceScheduleFactory(starts_at=T0)
    race_rotate(now=T0)
    later = T0 + timedelta(hours=1, minutes=2)
    result = race_rotate(now=later)
    rows = races_of(schedule)
    # The three races created before the downtime are finished; nothing between was created.
    assert rows[:3] == [(T0 + timedelta(minutes=m), Race.Status.FINISHED) for m in (0, 5, 10)]
    assert rows[3] == (T0 + timedelta(minutes=60), Race.Status.ACTIVE)
    assert [start for start, _ in rows[4:]] == [T0 + timedelta(minutes=65), T0 + timedelta(minutes=70)]
    assert len(result.finished) == 3


def test_rotation_late_in_a_window_starts_current_race_on_its_boundary():
    schedule = RaceScheduleFactory(starts_at=T0)
    race_rotate(now=T0 + timedelta(minutes=7, seconds=30))
    active = Race.objects.get(schedule=schedule, status=Race.Status.ACTIVE)
    assert (active.starts_at, active.ends_at) == (T0 + timedelta(minutes=5), T0 + timedelta(minutes=10))


def test_windows_stay_on_wall_clock_boundaries_across_dst_in_berlin(settings):
    settings.TIME_ZONE = "Europe/Berlin"
    berlin = ZoneInfo("Europe/Berlin")
    # 2026-03-29: clocks jump from 02:00 to 03:00 local (01:00 UTC).
    start = datetime(2026, 3, 29, 1, 40, tzinfo=berlin)
    schedule = RaceScheduleFactory(starts_at=start)
    instant = start
    while instant < datetime(2026, 3, 29, 3, 30, tzinfo=berlin):
        race_rotate(now=instant)
        instant += timedelta(minutes=5)
    races = list(Race.objects.filter(schedule=schedule).order_by("starts_at"))
    for earlier, later in zip(races, races[1:], strict=False):
        assert later.starts_at == earlier.ends_at, "no gap and no overlap across the DST change"
    for race in races:
        local = race.starts_at.astimezone(berlin)
        assert local.minute % 5 == 0 and local.second == 0
    # One hour of wall-clock time disappears: 01:55 local is followed by 03:00 local.
    local_starts = [r.starts_at.astimezone(berlin).strftime("%H:%M") for r in races]
    assert "01:55" in local_starts and "03:00" in local_starts and "02:00" not in local_starts
    assert local_starts[local_starts.index("01:55") + 1] == "03:00"


def test_dst_fall_back_does_not_repeat_or_skip_a_window(settings):
    settings.TIME_ZONE = "America/New_York"
    new_york = ZoneInfo("America/New_York")
    # 2026-11-01: clocks go back from 02:00 EDT to 01:00 EST.
    start = datetime(2026, 11, 1, 5, 30, tzinfo=UTC)  # 01:30 EDT
    schedule = RaceScheduleFactory(starts_at=start)
    for step in range(30):
        race_rotate(now=start + timedelta(minutes=5 * step))
    races = list(Race.objects.filter(schedule=schedule).order_by("starts_at"))
    starts = [r.starts_at for r in races]
    assert len(starts) == len(set(starts))
    assert all(b - a == timedelta(minutes=5) for a, b in zip(starts, starts[1:], strict=False))
    assert all(s.astimezone(new_york).minute % 5 == 0 for s in starts)


def test_disabled_schedule_stops_getting_races_and_future_ones_are_cancelled():
    schedule = RaceScheduleFactory(starts_at=T0)
    race_rotate(now=T0)
    schedule.enabled = False
    schedule.save()
    result = race_rotate(now=T0 + timedelta(minutes=1))
    assert len(result.cancelled) == 2  # the two scheduled future races
    race_rotate(now=T0 + timedelta(minutes=20))
    assert not Race.objects.filter(schedule=schedule, starts_at__gt=T0).exclude(status=Race.Status.CANCELLED).exists()
    # The race that was running when the schedule was disabled still finished normally.
    assert Race.objects.get(schedule=schedule, starts_at=T0).status == Race.Status.FINISHED


def test_disabled_class_stops_getting_races():
    race_class = RaceClassFactory(enabled=False)
    RaceScheduleFactory(race_class=race_class, starts_at=T0)
    race_rotate(now=T0)
    assert not Race.objects.filter(race_class=race_class).exists()


def test_one_off_race_is_respected():
    schedule = RaceScheduleFactory(starts_at=T0)
    one_off = RaceFactory(
        race_class=schedule.race_class, starts_at=T0 + timedelta(minutes=5), ends_at=T0 + timedelta(minutes=15)
    )
    race_rotate(now=T0)
    starts = [start for start, _ in races_of(schedule)]
    # Windows 12:05 and 12:10 overlap the one-off race: rotation leaves them out.
    assert T0 in starts
    assert T0 + timedelta(minutes=5) not in starts and T0 + timedelta(minutes=10) not in starts
    race_rotate(now=T0 + timedelta(minutes=5))
    one_off.refresh_from_db()
    assert one_off.status == Race.Status.ACTIVE
    assert Race.objects.filter(race_class=schedule.race_class, status=Race.Status.ACTIVE).count() == 1


def test_cancelled_race_is_not_recreated():
    schedule = RaceScheduleFactory(starts_at=T0)
    race_rotate(now=T0)
    upcoming = Race.objects.get(schedule=schedule, starts_at=T0 + timedelta(minutes=5))
    upcoming.status = Race.Status.CANCELLED
    upcoming.save()
    race_rotate(now=T0 + timedelta(minutes=5))
    assert Race.objects.filter(schedule=schedule, starts_at=T0 + timedelta(minutes=5)).count() == 1
    upcoming.refresh_from_db()
    assert upcoming.status == Race.Status.CANCELLED


def test_short_races_follow_each_other_between_rotations():
    schedule = RaceScheduleFactory(starts_at=T0, race_minutes=1)
    race_rotate(now=T0)
    starts = [start for start, _ in races_of(schedule)]
    # Every one-minute window until the next rotation exists, plus the one after.
    assert starts == [T0 + timedelta(minutes=m) for m in range(7)]


def test_schedule_end_is_respected():
    schedule = RaceScheduleFactory(starts_at=T0, ends_at=T0 + timedelta(minutes=10))
    race_rotate(now=T0 + timedelta(minutes=5))
    starts = [start for start, _ in races_of(schedule)]
    assert starts == [T0 + timedelta(minutes=5)]


def test_floor_to_boundary():
    assert floor_to_boundary(datetime(2026, 6, 1, 12, 7, 31, tzinfo=UTC)) == datetime(2026, 6, 1, 12, 5, tzinfo=UTC)
    assert floor_to_boundary(datetime(2026, 6, 1, 12, 5, tzinfo=UTC)) == datetime(2026, 6, 1, 12, 5, tzinfo=UTC)


@pytest.mark.django_db(transaction=True)
def test_rotation_sends_started_and_finished_events_to_the_class_group():
    schedule = RaceScheduleFactory(starts_at=T0)
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(f"class.{schedule.race_class_id}", channel)
    race_rotate(now=T0)
    first = async_to_sync(layer.receive)(channel)
    assert first["type"] == "race.started"
    assert first["race"]["class_id"] == schedule.race_class_id
    assert first["race"]["starts_at"] == "2026-06-01T12:00:00Z"
    race_rotate(now=T0 + timedelta(minutes=5))
    kinds = {async_to_sync(layer.receive)(channel)["type"] for _ in range(2)}
    assert kinds == {"race.started", "race.finished"}


def test_celery_task_rotates_by_the_clock():
    schedule = RaceScheduleFactory(starts_at=T0)
    with time_machine.travel(T0 + timedelta(minutes=5, seconds=1), tick=False):
        outcome = rotate.delay().get()
    assert outcome["started"] == 1
    assert Race.objects.get(schedule=schedule, status=Race.Status.ACTIVE).starts_at == T0 + timedelta(minutes=5)


def test_periodic_task_exists_after_migrate():
    from django_celery_beat.models import PeriodicTask

    task = PeriodicTask.objects.get(task="races.rotate")
    assert task.enabled
    assert task.crontab.minute == "*/5"
