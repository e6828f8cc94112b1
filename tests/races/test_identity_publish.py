"""The races app publishes each race's identity (A0) to the pipeline's table: services, rotation,
admin edits and ``manage.py publish_races``; settled races are never changed; DynamoDB down never fails
the schedule. Against a moto table."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command

from processors import clients
from processors.table import ResultsTable, create_table, store
from races.integrations import race_identity_of
from races.models import Race
from races.services import race_cancel, race_create, race_finish, race_rotate
from tests.conftest import free_port
from tests.factories import RaceClassFactory, RaceFactory, RaceScheduleFactory

pytestmark = pytest.mark.django_db

TABLE = "alleycat-races-test"
T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def _clear() -> None:
    clients.clear()


@pytest.fixture
def table(aws: str, monkeypatch: pytest.MonkeyPatch, settings: Any) -> Iterator[ResultsTable]:
    settings.ALLEYCAT_PUBLISH_RACES = True
    settings.ALLEYCAT_SETTLE_GRACE_SECONDS = 90
    monkeypatch.setenv("ALLEYCAT_TABLE", TABLE)
    _clear()
    create_table(clients.aws_client("dynamodb"), TABLE)
    yield store.get_results_table()
    _clear()


def ms(instant: datetime) -> int:
    return int(instant.timestamp() * 1000)


def test_a_new_race_is_published_after_commit(table, django_capture_on_commit_callbacks):
    race_class = RaceClassFactory()
    with django_capture_on_commit_callbacks(execute=True):
        race = race_create(race_class=race_class, starts_at=T0, ends_at=T0 + timedelta(minutes=5))
    identity = table.race_identity(race.pk)
    assert identity is not None
    assert (identity.class_id, identity.starts_at_ms, identity.ends_at_ms, identity.length_s) == (
        race_class.pk,
        ms(T0),
        ms(T0 + timedelta(minutes=5)),
        300,
    )
    assert identity.settle_at_ms == ms(T0 + timedelta(minutes=5, seconds=90))
    assert not identity.cancelled and not identity.settled


def test_nothing_is_published_when_the_transaction_rolls_back(table, django_capture_on_commit_callbacks):
    race_class = RaceClassFactory()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        race = race_create(race_class=race_class, starts_at=T0, ends_at=T0 + timedelta(minutes=5))
    assert callbacks and table.race_identity(race.pk) is None  # only on commit


def test_cancel_and_finish_republish(table, django_capture_on_commit_callbacks):
    race = RaceFactory(starts_at=T0, status=Race.Status.ACTIVE)
    with django_capture_on_commit_callbacks(execute=True):
        race_finish(race=race, now=T0 + timedelta(minutes=2))
    identity = table.race_identity(race.pk)
    assert identity is not None and identity.ends_at_ms == ms(T0 + timedelta(minutes=2)) and identity.length_s == 120
    other = RaceFactory(starts_at=T0 + timedelta(hours=1))
    with django_capture_on_commit_callbacks(execute=True):
        race_cancel(race=other)
    assert table.race_identity(other.pk).cancelled  # type: ignore[union-attr]


def test_rotation_publishes_the_races_it_creates(table, django_capture_on_commit_callbacks):
    schedule = RaceScheduleFactory(starts_at=T0 - timedelta(hours=1))
    with django_capture_on_commit_callbacks(execute=True):
        result = race_rotate(now=T0)
    assert len(result.created) == 3
    found = table.race_identities(result.created)
    assert sorted(found) == sorted(result.created)
    assert {identity.class_id for identity in found.values()} == {schedule.race_class_id}


def test_publish_races_command_converges_and_is_idempotent(table):
    now = datetime.now(UTC).replace(microsecond=0)
    past = RaceFactory(starts_at=now - timedelta(hours=2))
    current = RaceFactory(starts_at=now - timedelta(minutes=1))
    future = RaceFactory(starts_at=now + timedelta(minutes=10))
    out = StringIO()
    call_command("publish_races", stdout=out)
    assert "Published 2 of 2" in out.getvalue()
    assert sorted(table.race_identities([past.pk, current.pk, future.pk])) == sorted([current.pk, future.pk])
    before = table.race_identity(future.pk)
    call_command("publish_races", stdout=StringIO())
    assert table.race_identity(future.pk) == before


def test_a_settled_race_is_never_changed(table, django_capture_on_commit_callbacks):
    race = RaceFactory(starts_at=T0)
    table.put_race_identity(race_identity_of(race))
    table.settle_race(table.race_identity(race.pk))  # type: ignore[arg-type]
    settled = table.race_identity(race.pk)
    with django_capture_on_commit_callbacks(execute=True):
        race_finish(race=race, now=T0 + timedelta(minutes=1))
    assert table.race_identity(race.pk) == settled


def test_dynamodb_down_does_not_fail_the_schedule(table, monkeypatch, django_capture_on_commit_callbacks):
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    _clear()
    race_class = RaceClassFactory()
    with django_capture_on_commit_callbacks(execute=True):
        race = race_create(race_class=race_class, starts_at=T0, ends_at=T0 + timedelta(minutes=5))
    assert Race.objects.filter(pk=race.pk).exists()


def test_rotation_settles_races_past_their_deadline_on_a_quiet_stream(table, django_capture_on_commit_callbacks):
    # GIVEN a race that ended 10 minutes ago (published), and no aggregator writing anything
    now = datetime.now(UTC).replace(microsecond=0)
    race = RaceFactory(starts_at=now - timedelta(minutes=15), status=Race.Status.FINISHED)
    table.put_race_identity(race_identity_of(race))
    with django_capture_on_commit_callbacks(execute=True):
        race_rotate(now=now)
    assert table.race_identity(race.pk).settled  # type: ignore[union-attr]
