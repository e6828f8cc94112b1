"""Steps of the browser test that need the site's database, run as separate processes with the
site's own settings (``python -m tests.browser.scenario <step>``), as the real processes would.

- ``setup``: a class, four racers, the rider account (password from ALLEYCAT_RIDER_PASSWORD),
  race A running now for ``--seconds`` and race B right after it; prints the ids as JSON.
- ``pages``: a class with 60 named racers, four ended races with results, a race running now whose
  live item holds eight riders at second ``LIVE_SECOND`` (the rider, racer 1, among them), and the class
  history object (racer k's best at every second is 100 + k); written through the table module and
  the history store, as the pipeline writes them. Prints the ids as JSON.
- ``rotate``: runs the rotation (``races.services.race_rotate``): A finishes, B starts, and
  both events go to the class's Channels group through the real Redis layer.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import timedelta

from tests.support.scenario import races_now_and_next, rotate, run

RACERS = {1: "Ada Pedal", 2: "Bo Spoke", 3: "Cleo Crank", 4: "Dev Chain"}


def setup(seconds: int) -> dict:
    from django.contrib.auth import get_user_model

    from races.models import RaceClass, Racer

    race_class = RaceClass.objects.create(name="Sprint", description="Flat out.", display_order=1)
    user = get_user_model().objects.create_user("rider", password=os.environ["ALLEYCAT_RIDER_PASSWORD"])
    for racer_id, name in RACERS.items():
        Racer.objects.create(racer_id=racer_id, name=name, user=user if racer_id == 1 else None)
    race_a, race_b = races_now_and_next(race_class=race_class, seconds=seconds, next_seconds=2 * 60)
    return {
        "classId": race_class.pk,
        "raceA": race_a.pk,
        "raceB": race_b.pk,
        "aStartsAt": race_a.starts_at.timestamp(),
        "aEndsAt": race_a.ends_at.timestamp(),
        "bEndsAt": race_b.ends_at.timestamp(),
    }


FIRST_NAMES = ["Ada", "Bo", "Cleo", "Dev", "Eli", "Fay", "Gus", "Hana", "Ivo", "Juno", "Kai", "Lea"]
LAST_NAMES = ["Pedal", "Spoke", "Crank", "Chain", "Saddle"]
LIVE_SECOND = 30
RIDER_OUTPUT = 135.5  # the rider's output at LIVE_SECOND: beats their best there (101.0), 27th of 60


def pages() -> dict:
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from processors import clients, history_store
    from processors.config import get_config
    from processors.table import FinalResult, PersonalBest, get_results_table
    from races.integrations import race_identities_publish
    from races.models import Race, RaceClass, Racer

    race_class = RaceClass.objects.create(name="Sprint", description="Flat out.", display_order=1)
    user = get_user_model().objects.create_user("rider", password=os.environ["ALLEYCAT_RIDER_PASSWORD"])
    names = {k: f"{FIRST_NAMES[(k - 1) % 12]} {LAST_NAMES[(k - 1) // 12]}" for k in range(1, 61)}
    for racer_id, name in names.items():
        Racer.objects.create(racer_id=racer_id, name=name, user=user if racer_id == 1 else None)
    now = timezone.now().replace(microsecond=0)
    ended = []
    for index in range(4):
        starts_at = now - timedelta(minutes=45 - 10 * index)
        ended.append(
            Race.objects.create(
                race_class=race_class, starts_at=starts_at, ends_at=starts_at + timedelta(minutes=5), status="finished"
            )
        )
    starts_at = now - timedelta(seconds=LIVE_SECOND + 5)
    running = Race.objects.create(
        race_class=race_class, starts_at=starts_at, ends_at=starts_at + timedelta(minutes=5), status="active"
    )
    # The pipeline accepts readings only for races whose identity the races app published to the table.
    assert race_identities_publish(races=[*ended, running]) == len(ended) + 1
    table = get_results_table()
    # Race 0: racers 1..20 (racer 1 scores 4000); race 2: racers 1..5, racer 1 scores 4200, a personal best.
    scores = {0: {k: 3000.0 + 10 * k for k in range(1, 21)}}
    scores[0][1] = 4000.0
    scores[2] = {k: 3500.0 + 10 * k for k in range(2, 6)} | {1: 4200.0}
    for index, race_scores in scores.items():
        race = ended[index]
        results = [
            FinalResult(race.pk, race_class.pk, k, names[k], score, 300, 1_764_172_800_000 + k)
            for k, score in race_scores.items()
        ]
        table.put_final_results(results)
        table.put_personal_bests(PersonalBest(r.class_id, r.racer_id, r.name, r.score, r.race_id) for r in results)
        # The live item as the aggregator leaves it (20 seconds adding up to the score, finished): the
        # runner's finals handler reads it and writes the same final results.
        table.merge_live(
            race.pk,
            race_class.pk,
            {
                str(k): {
                    "n": names[k],
                    "ns": 1,
                    "o": {str(second): score / 20 for second in range(1, 21)},
                    "f": 1_764_172_800_000 + k,
                }
                for k, score in race_scores.items()
            },
        )
    # Riding now: racers 1..8 at seconds 1..LIVE_SECOND; racer 2 far ahead at 200 a second, the rider
    # at RIDER_OUTPUT in the last second, the others at 90.
    pending = {}
    for k in range(1, 9):
        outputs = {str(second): 200.0 if k == 2 else 90.0 for second in range(1, LIVE_SECOND + 1)}
        if k == 1:
            outputs[str(LIVE_SECOND)] = RIDER_OUTPUT
        pending[str(k)] = {"n": names[k], "ns": 1, "o": outputs, "f": None}
    table.merge_live(running.pk, race_class.pk, pending)
    bests = {k: {second: 100.0 + k for second in range(1, 301)} for k in range(1, 61)}
    history_store.merge_class_history(clients.aws_client("s3"), get_config().history_bucket, race_class.pk, bests)
    return {
        "classId": race_class.pk,
        "ended": [race.pk for race in ended],
        "running": running.pk,
        "names": {str(k): v for k, v in names.items()},
        "liveSecond": LIVE_SECOND,
        "riderOutput": RIDER_OUTPUT,
    }


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.browser.scenario")
    parser.add_argument("step", choices=["setup", "pages", "rotate"])
    parser.add_argument("--seconds", type=int, default=40)
    steps = {"setup": lambda args: setup(args.seconds), "pages": lambda args: pages(), "rotate": lambda args: rotate()}
    return run(parser, steps)


if __name__ == "__main__":
    sys.exit(main())
