"""What the scenario modules of the browser and web-tier tests share (``python -m tests.<suite>.scenario <step>``).

A scenario step runs as a process of its own with the site's settings, against the database the
site's processes share, and prints its result as one JSON line (``SiteProcesses.scenario`` reads it).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from datetime import timedelta
from typing import Any


def races_now_and_next(*, race_class: Any, seconds: int, next_seconds: int) -> tuple[Any, Any]:
    """Race A running now for ``seconds``, race B right after it; both published to the pipeline.

    Made directly, not through the services: the pipeline accepts readings only of races whose
    identity is in its table, so they are published as the services would.
    """
    from django.utils import timezone

    from races.integrations import race_identities_publish
    from races.models import Race

    starts_at = timezone.now().replace(microsecond=0) - timedelta(seconds=1)
    ends_at = starts_at + timedelta(seconds=seconds)
    race_a = Race.objects.create(race_class=race_class, starts_at=starts_at, ends_at=ends_at, status="active")
    race_b = Race.objects.create(
        race_class=race_class, starts_at=ends_at, ends_at=ends_at + timedelta(seconds=next_seconds), status="scheduled"
    )
    assert race_identities_publish(races=[race_a, race_b]) == 2
    return race_a, race_b


def rotate() -> dict:
    """The rotation (``races.services.race_rotate``): events go through the real Redis layer."""
    from races.services import race_rotate

    result = race_rotate()
    return {"finished": result.finished, "started": result.started}


def run(parser: argparse.ArgumentParser, steps: dict[str, Callable[[argparse.Namespace], dict]]) -> int:
    """Parse the step (the parser's ``step`` argument), set Django up, run it and print its JSON."""
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "alleycat_site.settings")
    import django

    django.setup()
    sys.stdout.write(json.dumps(steps[args.step](args)) + "\n")
    return 0
