"""Celery beat firing twice, late, or not at all for 20 minutes (``races.rotate`` called at those instants,
the clock moved with time-machine: no real wait), compared with a clean run that fires every 5 minutes.

The races and the identities the pipeline was given are the clean run's, except the two races that would
have started and ended inside the 20 silent minutes: they are never created (no race in the past), and no
race is duplicated or overlaps. The race riding now is known to the pipeline: its readings are counted in
its live standings, none is refused for its schedule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.utils import timezone

from leaderboards import integrations
from processors import clients
from processors.local.simulator import RaceSpec
from processors.table import get_results_table
from races.models import Race, RaceClass, RaceSchedule
from races.tasks import rotate
from tests.conftest import wait_until
from tests.reliability.conftest import TIMEOUT, Rig, expected_figures

SCHEDULE_REASONS = {"unknown_race", "class_mismatch", "second_out_of_race", "late", "race_full"}

pytestmark = [pytest.mark.e2e, pytest.mark.reliability, pytest.mark.django_db]


def _clear_clients() -> None:
    integrations.clients_clear()
    clients.clear()


def run_beat(instants: list[datetime], capture) -> dict[datetime, tuple]:
    """Create a class with a 5-minute schedule from ``instants[0]``, fire the rotation task at each instant."""
    klass = RaceClass.objects.create(name="Sprint", display_order=1)
    RaceSchedule.objects.create(race_class=klass, starts_at=instants[0], race_minutes=5)
    for instant in instants:
        with time_machine.travel(instant, tick=False), capture(execute=True):
            rotate()  # the task itself, as the worker runs it when beat fires
    table = get_results_table()
    found = {}
    for race in Race.objects.filter(race_class=klass).order_by("starts_at"):
        identity = table.race_identity(race.pk)
        assert identity is not None, f"race {race.pk} was never published"
        published = (identity.class_id, identity.starts_at_ms, identity.ends_at_ms, identity.length_s)
        assert published[0] == klass.pk
        found[race.starts_at] = (race.ends_at, race.status, published[1:], identity.cancelled)
    return found


def test_beat_twice_late_and_silent_for_20_minutes_matches_a_clean_run(
    rig: Rig, settings, django_capture_on_commit_callbacks
):
    settings.ALLEYCAT_PUBLISH_RACES = True
    _clear_clients()
    now = timezone.now().astimezone(UTC)
    t0 = now.replace(minute=now.minute - now.minute % 5, second=0, microsecond=0) - timedelta(minutes=30)
    minutes = [timedelta(minutes=m) for m in range(0, 31, 5)]

    # A clean run: beat on every 5-minute boundary, t0 … t0 + 30 min (the last one is the current window).
    clean = run_beat([t0 + m for m in minutes], django_capture_on_commit_callbacks)
    Race.objects.all().delete()
    RaceSchedule.objects.all().delete()
    RaceClass.objects.all().delete()

    # The faulty run: twice at t0, 2 min 30 s late at t0 + 5, then silent for 20 minutes, then t0 + 30.
    late = t0 + timedelta(minutes=7, seconds=30)
    faulty = run_beat([t0, t0, late, t0 + timedelta(minutes=30)], django_capture_on_commit_callbacks)

    missing = set(clean) - set(faulty)
    assert missing == {t0 + timedelta(minutes=20), t0 + timedelta(minutes=25)}  # started and ended while silent
    assert all(clean[start][0] <= t0 + timedelta(minutes=30) for start in missing)
    assert set(faulty) <= set(clean)
    assert {start: faulty[start] for start in faulty} == {start: clean[start] for start in faulty}
    starts = sorted(faulty)
    assert all(
        b - a == timedelta(minutes=5) or b - a == timedelta(minutes=15)
        for a, b in zip(starts, starts[1:], strict=False)
    )
    assert [status for _end, status, *_ in faulty.values()].count(Race.Status.ACTIVE) == 1

    # AND the race riding now is known to the pipeline: a short ride of it is counted exactly, no dead letter
    current = Race.objects.get(status=Race.Status.ACTIVE)
    rig.runner()
    race = RaceSpec(race_id=current.pk, class_id=current.race_class_id, first_second=1, last_second=10)
    messages = rig.play(race, range(1, 11))
    scores, _ = expected_figures(messages)

    def live() -> dict[int, float] | None:
        standings = rig.table().live_standings(race.race_id)
        rows = {row.racer_id: row.score for row in standings.rows} if standings else {}
        return rows if len(rows) == len(scores) and all(row.second == 10 for row in standings.rows) else None  # type: ignore[union-attr]

    assert wait_until(live, timeout=TIMEOUT, what="the live standings", output=rig.output) == pytest.approx(scores)
    # (finals' and the publisher's letters about the table's own records are another matter, see the README)
    refused = [letter for letter in rig.dead_letters() if letter.get("reason") in SCHEDULE_REASONS]
    assert refused == []
