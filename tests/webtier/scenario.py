"""Database steps of the web-tier tests, run as separate processes with the site's own settings
(``python -m tests.webtier.scenario <step>``), against the SQLite file the daphne processes share.

- ``setup --racers N --seconds S``: a class, racers 1..N, riders ``rider1``/``rider2`` (linked to
  racers 1 and 2), race A running now for S seconds and race B right after it; prints ids as JSON.
- ``session <username>``: a logged-in session key for that user.
- ``rotate``: the rotation (A finishes, B starts; events through the real Redis layer).
"""

from __future__ import annotations

import argparse
import sys

from tests.support.scenario import races_now_and_next, rotate, run


def setup(racers: int, seconds: int) -> dict:
    from django.contrib.auth import get_user_model

    from races.models import RaceClass, Racer

    race_class = RaceClass.objects.create(name="Sprint", description="Flat out.", display_order=1)
    users = {i: get_user_model().objects.create_user(f"rider{i}", password="unused-pw-1") for i in (1, 2)}
    Racer.objects.bulk_create(
        [Racer(racer_id=i, name=f"Racer {i}", user=users.get(i)) for i in range(1, racers + 1)], batch_size=500
    )
    race_a, race_b = races_now_and_next(race_class=race_class, seconds=seconds, next_seconds=5 * 60)
    return {
        "class_id": race_class.pk,
        "race_a": race_a.pk,
        "race_b": race_b.pk,
        "a_ends_at": race_a.ends_at.timestamp(),
    }


def session(username: str) -> dict:
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
    from django.contrib.sessions.backends.db import SessionStore

    user = get_user_model().objects.get(username=username)
    store = SessionStore()
    store[SESSION_KEY] = str(user.pk)
    store[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    store[HASH_SESSION_KEY] = user.get_session_auth_hash()
    store.save()
    return {"sessionid": store.session_key}


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.webtier.scenario")
    parser.add_argument("step", choices=["setup", "session", "rotate"])
    parser.add_argument("username", nargs="?")
    parser.add_argument("--racers", type=int, default=4)
    parser.add_argument("--seconds", type=int, default=40)
    steps = {
        "setup": lambda args: setup(args.racers, args.seconds),
        "session": lambda args: session(args.username),
        "rotate": lambda args: rotate(),
    }
    return run(parser, steps)


if __name__ == "__main__":
    sys.exit(main())
