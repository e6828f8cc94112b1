"""Steps of the browser test that need the site's database, run as separate processes with the
site's own settings (``python -m tests.browser.scenario <step>``), as the real processes would.

- ``setup``: a class, four racers, the rider account (password from ALLEYCAT_RIDER_PASSWORD),
  race A running now for ``--seconds`` and race B right after it; prints the ids as JSON.
- ``rotate``: runs the rotation (``races.services.race_rotate``): A finishes, B starts, and
  both events go to the class's Channels group through the real Redis layer.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import timedelta

RACERS = {1: "Ada Pedal", 2: "Bo Spoke", 3: "Cleo Crank", 4: "Dev Chain"}


def setup(seconds: int) -> dict:
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from races.models import Race, RaceClass, Racer

    race_class = RaceClass.objects.create(name="Sprint", description="Flat out.", display_order=1)
    user = get_user_model().objects.create_user("rider", password=os.environ["ALLEYCAT_RIDER_PASSWORD"])
    for racer_id, name in RACERS.items():
        Racer.objects.create(racer_id=racer_id, name=name, user=user if racer_id == 1 else None)
    starts_at = timezone.now().replace(microsecond=0) - timedelta(seconds=1)
    ends_at = starts_at + timedelta(seconds=seconds)
    race_a = Race.objects.create(race_class=race_class, starts_at=starts_at, ends_at=ends_at, status="active")
    race_b = Race.objects.create(
        race_class=race_class, starts_at=ends_at, ends_at=ends_at + timedelta(minutes=2), status="scheduled"
    )
    from races.integrations import race_identities_publish

    # made directly, not through the services: tell the pipeline the schedule as they would
    assert race_identities_publish(races=[race_a, race_b]) == 2
    return {
        "classId": race_class.pk,
        "raceA": race_a.pk,
        "raceB": race_b.pk,
        "aStartsAt": starts_at.timestamp(),
        "aEndsAt": ends_at.timestamp(),
        "bEndsAt": race_b.ends_at.timestamp(),
    }


def rotate() -> dict:
    from races.services import race_rotate

    result = race_rotate()
    return {"finished": result.finished, "started": result.started}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.browser.scenario")
    parser.add_argument("step", choices=["setup", "rotate"])
    parser.add_argument("--seconds", type=int, default=40)
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "alleycat_site.settings")
    import django

    django.setup()
    result = setup(args.seconds) if args.step == "setup" else rotate()
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
