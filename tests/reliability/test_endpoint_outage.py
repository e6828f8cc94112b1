"""The embedded AWS endpoint stopped for 30 s mid-race and started again: the API and the pages answer 503
with Retry-After meanwhile (never a 500), the runner (left running) resumes from its checkpoints, and the
race equals the recomputation from the messages sent."""

from __future__ import annotations

import signal
import threading
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from leaderboards import integrations
from processors import clients
from processors.local.simulator import RaceSpec
from races.models import Race, RaceClass, Racer
from tests.conftest import wait_until
from tests.leaderboards.test_store_errors import API_PATHS, PAGE_PATHS
from tests.reliability.conftest import OUTAGE_SECONDS, TIMEOUT, Rig, assert_exact

pytestmark = [pytest.mark.e2e, pytest.mark.reliability, pytest.mark.django_db]


def _clear_clients() -> None:
    integrations.clients_clear()
    clients.clear()


def test_endpoint_down_30_s_gives_503_and_the_runner_resumes(rig: Rig, client):
    _clear_clients()  # the site's clients reach the rig's endpoint (AWS_ENDPOINT_URL of the fixture)
    klass = RaceClass.objects.create(name="Sprint", display_order=1)
    starts = timezone.now().replace(microsecond=0)
    race_row = Race.objects.create(race_class=klass, starts_at=starts, ends_at=starts + timedelta(minutes=5))
    Racer.objects.create(racer_id=31, name="Ada Pedal")
    ids = {"race": race_row.pk, "klass": klass.pk, "racer": 31}

    runner = rig.runner()
    race = RaceSpec(race_id=race_row.pk, class_id=klass.pk, first_second=1, last_second=30)
    rig.publish(race, length_s=30)
    racers = range(31, 46)
    stop = threading.Event()
    thread, holder = rig.play_in_background(race, racers, speed=3, stop=stop)

    # WHEN the endpoint stops mid-race (the bikes pause: a producer's own retries are not the pipeline's)
    wait_until(lambda: rig.aggregated() >= 60, timeout=TIMEOUT, what="part of the race processed", output=rig.output)
    stop.set()
    thread.join(timeout=TIMEOUT)
    first = holder["result"]
    assert first.lost == 0 and first.seconds_played < 30
    rig.endpoint.signal(signal.SIGTERM)

    # THEN for 30 s every API path answers 503 with Retry-After and every page 503, never a 500
    answers: dict[int, int] = {}
    down_until = time.monotonic() + OUTAGE_SECONDS
    while time.monotonic() < down_until:
        for path in API_PATHS + PAGE_PATHS:
            response = client.get(path.format(**ids))
            answers[response.status_code] = answers.get(response.status_code, 0) + 1
            assert response.status_code == 503, (path, response.status_code, response.content[:300])
            if path.startswith("/api/"):
                assert int(response["Retry-After"]) > 0
        time.sleep(1.0)
    assert runner.proc.poll() is None, "the runner must ride out the outage"  # type: ignore[union-attr]
    print(f"answers while the endpoint was down: {answers}")

    # WHEN it starts again and the race goes on
    rig.endpoint.start()
    print(f"endpoint restart: {rig.endpoint.started_in:.2f} s")
    rest = RaceSpec(race.race_id, race.class_id, first_second=first.seconds_played + 1, last_second=race.last_second)
    second = rig.play(rest, racers, speed=10)

    # THEN the race is exact: the runner resumed from its checkpoints, nothing lost, nothing twice
    assert_exact(rig, race, first.messages + second, dead_letters=0)
    response = client.get(f"/api/races/{race.race_id}/results/")
    assert response.status_code == 200
    assert runner.stop() == 0
