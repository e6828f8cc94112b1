"""Plausible, distinct racer names for the demo and the simulator (Faker, pinned, seeded).

A name depends only on the racer id (and the Faker version pinned in requirements.txt), so a
demo looks the same on every machine and a racer keeps their name from race to race. Names
never carry ids; ``distinct_names`` makes every name of a set unique by drawing again
(seeded by the attempt) when one is already taken.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterable
from functools import lru_cache

from faker import Faker

# Locales of the kind of people who ride indoor-bike races at home; one chosen per racer.
LOCALES = ("en_US", "en_GB", "en_IE", "en_CA", "de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL", "sv_SE", "da_DK", "pt_PT")
MAX_NAME = 64
_lock = threading.Lock()  # a Faker instance's seed and draws must not interleave between threads


@lru_cache(maxsize=len(LOCALES))
def _faker(locale: str) -> Faker:
    return Faker(locale)


def racer_name(racer_id: int, attempt: int = 0) -> str:
    """The generated name of a racer (``attempt`` > 0: the next draw, when the first is taken)."""
    seed = f"alleycat-racer-name:{racer_id}:{attempt}"
    locale = random.Random(seed).choice(LOCALES)
    with _lock:
        fake = _faker(locale)
        fake.seed_instance(seed)
        return f"{fake.first_name()} {fake.last_name()}"[:MAX_NAME]


def distinct_names(racer_ids: Iterable[int], *, taken: Iterable[str] = ()) -> dict[int, str]:
    """A name per racer id, none equal (ignoring case) to another or to a ``taken`` one."""
    used = {name.casefold() for name in taken}
    names: dict[int, str] = {}
    for racer_id in racer_ids:
        attempt = 0
        name = racer_name(racer_id)
        while name.casefold() in used:
            attempt += 1
            name = racer_name(racer_id, attempt)
        used.add(name.casefold())
        names[racer_id] = name
    return names
