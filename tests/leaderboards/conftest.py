"""Fixtures for the leaderboards tests: a moto DynamoDB table and history bucket, seeded only
through the processors' own write functions (the table module, the history store), and races in SQL.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import boto3
import pytest
from django.core.cache import cache
from django.utils import timezone

from leaderboards import integrations
from processors import clients, history_store
from processors.table import FinalResult, PersonalBest, ResultsTable, create_table, store
from races.models import Race, RaceClass, Racer
from tests.conftest import free_port

TABLE_NAME = "alleycat-leaderboards-test"
HISTORY_BUCKET = "alleycat-history-test"


def _clear_caches() -> None:
    cache.clear()  # settled results pages are cached by race id, and ids repeat between tests
    clients.clear()
    integrations.clients_clear()
    clients.clear()


@pytest.fixture(autouse=True)
def _fresh_clients() -> Iterator[None]:
    # Clients are cached per process and bound to AWS_ENDPOINT_URL when made: each test gets its own.
    _clear_caches()
    yield
    _clear_caches()


@pytest.fixture
def table(aws: str, monkeypatch: pytest.MonkeyPatch) -> ResultsTable:
    monkeypatch.setenv("ALLEYCAT_TABLE", TABLE_NAME)
    clients.clear()  # configuration is read once per process
    create_table(clients.aws_client("dynamodb"), TABLE_NAME)
    return store.get_results_table()


@pytest.fixture
def history_bucket(aws: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("ALLEYCAT_HISTORY_BUCKET", HISTORY_BUCKET)
    clients.clear()
    boto3.client("s3").create_bucket(Bucket=HISTORY_BUCKET)
    return HISTORY_BUCKET


@pytest.fixture
def unreachable_aws(aws: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """AWS_ENDPOINT_URL pointing at a closed port on 127.0.0.1: every DynamoDB/S3 call fails to connect."""
    url = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", url)
    _clear_caches()
    return url


# --- SQL ---------------------------------------------------------------------------------


@pytest.fixture
def race_class(db) -> RaceClass:
    return RaceClass.objects.create(name="Sprint", display_order=1)


@pytest.fixture
def make_race(db, race_class: RaceClass) -> Callable[..., Race]:
    """A race of ``race_class`` (or ``race_class=``) starting ``start_minutes`` from now."""

    def make(*, start_minutes: float = -10, minutes: int = 5, race_class: RaceClass = race_class, **extra) -> Race:
        starts_at = (timezone.now() + timedelta(minutes=start_minutes)).replace(microsecond=0)
        return Race.objects.create(
            race_class=race_class, starts_at=starts_at, ends_at=starts_at + timedelta(minutes=minutes), **extra
        )

    return make


@pytest.fixture
def finished_race(make_race) -> Race:
    """A race that ended five minutes ago (its results are settled)."""
    return make_race(start_minutes=-10, status=Race.Status.FINISHED)


@pytest.fixture
def running_race(make_race) -> Race:
    return make_race(start_minutes=-1, status=Race.Status.ACTIVE)


# --- DynamoDB / S3 seeding through the processors' write functions ------------------------


def settle(table: ResultsTable, race: Race) -> None:
    """Publish the race's identity as the races app does, then settle it as the aggregator does."""
    from races.integrations import race_identity_of

    table.put_race_identity(race_identity_of(race))
    identity = table.race_identity(race.pk)
    assert identity is not None
    table.settle_race(identity)


def seed_live(
    table: ResultsTable,
    race: Race,
    racers: dict[int, tuple[str, dict[int, float], int | None]],
) -> None:
    """Merge racers into the race's live item as the aggregator does: id -> (name, {second: output}, finished_ms)."""
    pending = {
        str(racer_id): {
            "n": name,
            "ns": max(outputs) if outputs else 0,
            "o": {str(second): output for second, output in outputs.items()},
            "f": finished,
        }
        for racer_id, (name, outputs, finished) in racers.items()
    }
    table.merge_live(race.pk, race.race_class_id, pending, now_ms=1_764_172_800_000)


def seed_finals(table: ResultsTable, race: Race, scores: dict[int, float], *, names: dict[int, str] | None = None):
    """Final results as the finals handler writes them, plus personal bests ("only if better")."""
    results = [
        FinalResult(
            race_id=race.pk,
            class_id=race.race_class_id,
            racer_id=racer_id,
            name=(names or {}).get(racer_id, f"Racer {racer_id}"),
            score=score,
            second=300,
            finished_at_ms=1_764_172_800_000 + racer_id,
        )
        for racer_id, score in scores.items()
    ]
    table.put_final_results(results)
    table.put_personal_bests(PersonalBest(r.class_id, r.racer_id, r.name, r.score, r.race_id) for r in results)
    return results


def seed_history(bucket: str, class_id: int, bests: dict[int, dict[int, float]]) -> dict[str, Any]:
    """Merge per-second bests into the class history object as the history handler does."""
    s3 = clients.aws_client("s3")
    history_store.merge_class_history(s3, bucket, class_id, bests, now_ms=1_764_172_800_000)
    document, _etag = history_store.read_class_history(s3, bucket, class_id)
    assert document is not None
    return document


@pytest.fixture
def racer(db) -> Racer:
    return Racer.objects.create(racer_id=7, name="Ada Pedal")
