"""The web process (daphne) SIGKILLed at random moments while clients read a race's results, started again
each time: it holds nothing of its own, so the API answers exactly what it answered before (the race's
results as the pipeline stored them), and no request ever got a 500."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from processors.local.simulator import RaceSpec
from tests.conftest import free_port, wait_for_http
from tests.reliability.conftest import REPO, TIMEOUT, Rig, assert_exact, random_moment
from tests.reliability.test_worker_kill import manage

pytestmark = [pytest.mark.e2e, pytest.mark.reliability]

CURRENT = """
from races.models import Race
from django.utils import timezone
now = timezone.now()
race = Race.objects.filter(race_class__display_order=1, starts_at__lte=now, ends_at__gt=now).first()
print(f"RACE={race.pk},{race.race_class_id}")
"""


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_web_process_killed_at_random_moments_answers_the_same(rig: Rig, redis_url: str, tmp_path: Path):
    env = {k: v for k, v in rig.env.items() if k != "DATABASE_URL"}
    env.update({"DJANGO_DEBUG": "1", "DJANGO_SETTINGS_MODULE": "alleycat_site.settings", "REDIS_URL": redis_url})
    env["ALLEYCAT_VAR_DIR"] = str(tmp_path / "site")
    manage(env, "migrate", "-v0")
    manage(env, "seed_demo")
    line = next(x for x in manage(env, "shell", "-c", CURRENT).splitlines() if x.startswith("RACE="))
    race_id, class_id = (int(x) for x in line[len("RACE=") :].split(","))

    # GIVEN a race ridden in class 1's current race, its results stored
    rig.runner()
    race = RaceSpec(race_id=race_id, class_id=class_id, first_second=1, last_second=10)
    assert_exact(rig, race, rig.play(race, range(1, 11)), dead_letters=0)

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    argv = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "alleycat_site.asgi:application"]

    def start() -> subprocess.Popen:
        with (tmp_path / "web.log").open("a") as handle:
            proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=handle, stderr=subprocess.STDOUT)
        wait_for_http(f"{base}/healthz", timeout=TIMEOUT)
        return proc

    web = start()
    try:
        status, body = get(f"{base}/api/races/{race_id}/results/")
        assert status == 200
        before = json.loads(body)
        assert len(before["results"]) == 10

        # WHEN clients keep reading while the web process is SIGKILLed three times and started again
        statuses: list[int] = []
        stop = threading.Event()

        def read() -> None:
            while not stop.is_set():
                try:
                    statuses.append(get(f"{base}/api/races/{race_id}/results/")[0])
                except OSError:
                    statuses.append(0)  # no process listening: a refused connection, not an answer
                time.sleep(0.1)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        for kill in range(3):
            time.sleep(random_moment(0.5, 2.0, f"web-kill-{kill}"))
            web.kill()
            web.wait(timeout=30)
            web = start()
        time.sleep(1.0)
        stop.set()
        reader.join(timeout=30)

        # THEN every answer was a 200 (or no answer while no process listened), and the results are the same
        assert 500 not in statuses and set(statuses) <= {0, 200}, statuses
        status, body = get(f"{base}/api/races/{race_id}/results/")
        assert status == 200 and json.loads(body) == before
        print(f"answers: {statuses.count(200)} × 200, {statuses.count(0)} refused while down")
    finally:
        web.kill()
        web.wait(timeout=30)
