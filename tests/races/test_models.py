"""Validation rules of the schedule models."""

from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError

from races.models import Race
from races.services import race_cancel, race_create, race_finish, race_schedule_create, race_start_now
from tests.factories import RaceClassFactory, RaceFactory, RaceScheduleFactory

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def test_a_class_never_has_two_overlapping_races():
    race_class = RaceClassFactory()
    race_create(race_class=race_class, starts_at=T0, ends_at=T0 + timedelta(minutes=10))
    with pytest.raises(ValidationError) as error:
        race_create(race_class=race_class, starts_at=T0 + timedelta(minutes=5), ends_at=T0 + timedelta(minutes=15))
    assert "Overlaps" in str(error.value)


def test_back_to_back_races_do_not_overlap():
    race_class = RaceClassFactory()
    race_create(race_class=race_class, starts_at=T0, ends_at=T0 + timedelta(minutes=5))
    race_create(race_class=race_class, starts_at=T0 + timedelta(minutes=5), ends_at=T0 + timedelta(minutes=10))
    assert Race.objects.filter(race_class=race_class).count() == 2


def test_other_classes_may_race_at_the_same_time():
    race_create(race_class=RaceClassFactory(), starts_at=T0, ends_at=T0 + timedelta(minutes=5))
    race_create(race_class=RaceClassFactory(), starts_at=T0, ends_at=T0 + timedelta(minutes=5))
    assert Race.objects.count() == 2


def test_a_cancelled_race_frees_its_slot():
    race_class = RaceClassFactory()
    first = race_create(race_class=race_class, starts_at=T0, ends_at=T0 + timedelta(minutes=5))
    race_cancel(race=first)
    race_create(race_class=race_class, starts_at=T0, ends_at=T0 + timedelta(minutes=5))
    assert Race.objects.filter(race_class=race_class).count() == 2


@pytest.mark.parametrize("minutes", [0, -5])
def test_a_race_ends_after_it_starts(minutes):
    with pytest.raises(ValidationError):
        race_create(race_class=RaceClassFactory(), starts_at=T0, ends_at=T0 + timedelta(minutes=minutes))


def test_the_database_refuses_a_race_that_ends_before_it_starts():
    with pytest.raises(IntegrityError):
        RaceFactory(starts_at=T0, ends_at=T0 - timedelta(minutes=1))


@pytest.mark.parametrize("minutes, ok", [(0, False), (1, True), (5, True), (60, True), (61, False)])
def test_race_length_is_1_to_60_minutes(minutes, ok):
    race_class = RaceClassFactory()
    if ok:
        assert race_schedule_create(race_class=race_class, starts_at=T0, race_minutes=minutes).race_minutes == minutes
    else:
        with pytest.raises(ValidationError):
            race_schedule_create(race_class=race_class, starts_at=T0, race_minutes=minutes)


def test_one_off_race_longer_than_an_hour_is_refused():
    with pytest.raises(ValidationError):
        race_create(race_class=RaceClassFactory(), starts_at=T0, ends_at=T0 + timedelta(minutes=61))


def test_schedule_starts_on_a_whole_minute():
    with pytest.raises(ValidationError):
        race_schedule_create(race_class=RaceClassFactory(), starts_at=T0 + timedelta(seconds=30))


def test_schedule_window_arithmetic():
    schedule = RaceScheduleFactory(starts_at=T0, race_minutes=5)
    assert schedule.window_at(T0 - timedelta(seconds=1)) is None
    assert schedule.window_at(T0 + timedelta(minutes=7)) == (T0 + timedelta(minutes=5), T0 + timedelta(minutes=10))
    assert schedule.next_window_after(T0) == (T0 + timedelta(minutes=5), T0 + timedelta(minutes=10))


def test_state_comes_from_the_clock():
    race = RaceFactory(starts_at=T0, status=Race.Status.SCHEDULED)
    assert race.state_at(T0 - timedelta(seconds=1)) == "scheduled"
    assert race.state_at(T0) == "active"
    assert race.state_at(race.ends_at) == "finished"


def test_start_now_keeps_the_length_and_refuses_overlap():
    race_class = RaceClassFactory()
    later = RaceFactory(race_class=race_class, starts_at=T0 + timedelta(hours=1))
    started = race_start_now(race=later, now=T0)
    assert (started.starts_at, started.ends_at, started.status) == (T0, T0 + timedelta(minutes=5), "active")
    blocked = RaceFactory(race_class=race_class, starts_at=T0 + timedelta(hours=2))
    with pytest.raises(ValidationError):
        race_start_now(race=blocked, now=T0 + timedelta(minutes=1))


def test_finish_and_cancel_rules():
    race = RaceFactory(starts_at=T0, status=Race.Status.ACTIVE)
    finished = race_finish(race=race, now=T0 + timedelta(minutes=2))
    assert finished.ends_at == T0 + timedelta(minutes=2) and finished.status == "finished"
    with pytest.raises(ValidationError):
        race_cancel(race=finished)
    future = RaceFactory(starts_at=T0 + timedelta(hours=1))
    with pytest.raises(ValidationError):
        race_finish(race=future, now=T0)
