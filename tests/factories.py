"""factory_boy factories for the schedule models."""

from datetime import UTC, datetime, timedelta

import factory

from races.models import Race, RaceClass, Racer, RaceSchedule


class RaceClassFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = RaceClass

    name = factory.Sequence(lambda n: f"Class {n}")
    description = factory.Faker("sentence")
    display_order = factory.Sequence(int)


class RacerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Racer

    racer_id = factory.Sequence(lambda n: n + 1)
    name = factory.Faker("first_name")


class RaceScheduleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = RaceSchedule

    race_class = factory.SubFactory(RaceClassFactory)
    starts_at = datetime(2026, 1, 1, tzinfo=UTC)
    race_minutes = 5


class RaceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Race

    race_class = factory.SubFactory(RaceClassFactory)
    starts_at = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    ends_at = factory.LazyAttribute(lambda race: race.starts_at + timedelta(minutes=5))
    status = Race.Status.SCHEDULED
