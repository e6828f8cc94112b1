"""Play bikes into the stream.

``manage.py simulate --racers N --class C [--race current|ID] [--seconds S] [--speed X]``

``--demo`` (started by ``make run`` unless SIMULATE=0) keeps every enabled class's current race
filled with a few dozen racers and follows the races as rotation replaces them.

The race comes from the schedule (``races.selectors``); the sending itself is the Django-free
``processors.local.simulator``. Racer names come from Racer rows where they exist.
"""

from __future__ import annotations

import logging
import signal
import threading
import time

import boto3
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from processors.local.names import distinct_names
from processors.local.simulator import MAX_RACERS, RaceSpec, SimulationResult, Simulator, profiles
from races.integrations import race_identities_publish
from races.models import Race, RaceClass, Racer
from races.selectors import race_class_list_with_current, race_current_for_class

logger = logging.getLogger("alleycat.simulator")

DEMO_RACERS = 24
DEMO_POLL_SECONDS = 2.0
SYNTHETIC_RACER_BASE = 100_000  # ids of generated racers in the demo (no Racer row)


def _racer_pairs(count: int, *, offset: int = 0, stride: int = 1, synthetic_base: int) -> list[tuple[int, str | None]]:
    """``count`` racers: Racer rows first (every ``stride``-th from ``offset``), then generated ones (Faker names).

    Racers linked to a user account are left out: they ride themselves (the ride page), and a
    simulated bike must never send readings in their name.
    """
    unlinked = Racer.objects.filter(user__isnull=True).order_by("racer_id")
    rows = list(unlinked.values_list("racer_id", "name"))[offset::stride][:count]
    pairs: list[tuple[int, str | None]] = [(racer_id, name) for racer_id, name in rows]
    missing = count - len(pairs)
    if missing > 0:
        # Generated racers: ids no Racer row has (a bike must not ride under someone's id), and
        # Faker names distinct from every registered racer's.
        window = range(synthetic_base, synthetic_base + 2 * missing + 1000)
        registered = set(Racer.objects.filter(racer_id__in=window).values_list("racer_id", flat=True))
        ids = [racer_id for racer_id in window if racer_id not in registered][:missing]
        names = distinct_names(ids, taken=Racer.objects.values_list("name", flat=True).iterator())
        pairs += [(racer_id, names[racer_id]) for racer_id in ids]
    return pairs


def _race_spec(race: Race, *, seconds: int | None, from_now: bool) -> RaceSpec:
    length = int((race.ends_at - race.starts_at).total_seconds())
    first = 1
    if from_now:
        first = min(length, max(1, int((timezone.now() - race.starts_at).total_seconds()) + 1))
    last = length if seconds is None else min(length, first + seconds - 1)
    return RaceSpec(race_id=race.pk, class_id=race.race_class_id, first_second=first, last_second=last)


class Command(BaseCommand):
    help = "Simulate bikes: one message per racer per second into the Kinesis stream."

    def add_arguments(self, parser):
        parser.add_argument("--racers", type=int, default=25, help=f"racers (1..{MAX_RACERS})")
        parser.add_argument("--class", dest="race_class", help="class id or name")
        parser.add_argument("--race", default="current", help="'current' (from the schedule) or a race id")
        parser.add_argument("--seconds", type=int, default=None, help="seconds to play (default: to the race's end)")
        parser.add_argument("--speed", type=float, default=1.0, help="10 = ten times faster than real time")
        parser.add_argument("--demo", action="store_true", help="keep every class's current race filled")
        parser.add_argument("--demo-racers", type=int, default=DEMO_RACERS)
        parser.add_argument("--no-progress", action="store_true", help="log lines instead of a progress bar")

    def handle(self, *args, **options):
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
        for noisy in ("botocore", "boto3", "urllib3"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        stop = threading.Event()  # SIGTERM/SIGINT: finish the second in progress, then stop
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        simulator = Simulator(boto3.client("kinesis"), settings.ALLEYCAT_STREAM, stop=stop)
        if options["demo"]:
            return self._demo(simulator, racers=options["demo_racers"], stop=stop)
        if not 1 <= options["racers"] <= MAX_RACERS:
            raise CommandError(f"--racers must be between 1 and {MAX_RACERS}")
        if options["speed"] <= 0:
            raise CommandError("--speed must be positive")
        race = self._race(options["race_class"], options["race"])
        # The pipeline counts a reading only for a race it knows: publish it (idempotent) before riding.
        race_identities_publish(races=[race])
        spec = _race_spec(race, seconds=options["seconds"], from_now=options["race"] == "current")
        racers = profiles(_racer_pairs(options["racers"], synthetic_base=SYNTHETIC_RACER_BASE))
        self.stdout.write(
            f"Race {race.pk} ({race.race_class}): {len(racers)} racers, "
            f"seconds {spec.first_second}..{spec.last_second} at {options['speed']:g}x into {settings.ALLEYCAT_STREAM}"
        )
        result = self._play_with_progress(
            simulator, spec, racers, speed=options["speed"], stop=stop, bar=not options["no_progress"]
        )
        self.stdout.write(
            f"Sent {result.sent} messages in {result.elapsed:.1f}s ({result.rate:.0f}/s), "
            f"{result.retried} retried, {result.lost} lost."
        )
        if result.lost:
            raise CommandError(f"{result.lost} messages could not be delivered")

    def _race(self, race_class: str | None, race: str) -> Race:
        if race != "current":
            try:
                return Race.objects.select_related("race_class").get(pk=int(race))
            except (ValueError, Race.DoesNotExist):
                raise CommandError(f"no race {race!r}") from None
        if not race_class:
            raise CommandError("--class is required with --race current")
        lookup = {"pk": int(race_class)} if race_class.isdigit() else {"name__iexact": race_class}
        try:
            klass = RaceClass.objects.get(**lookup)
        except RaceClass.DoesNotExist:
            raise CommandError(f"no class {race_class!r}") from None
        current = race_current_for_class(class_id=klass.pk)
        if current is None:
            raise CommandError(f"class {klass} has no race running now (see the schedule in the admin)")
        return current

    def _play_with_progress(self, simulator, spec, racers, *, speed, stop, bar) -> SimulationResult:
        total = spec.seconds * len(racers)
        if bar:
            from tqdm import tqdm

            with tqdm(total=total, unit="msg", dynamic_ncols=True) as progress:

                def update(count: int, result: SimulationResult) -> None:
                    progress.update(count)
                    progress.set_postfix(rate=f"{result.rate:.0f}/s", retried=result.retried, lost=result.lost)

                return simulator.play(spec, racers, speed=speed, stop=stop, progress=update)
        last_log = [time.monotonic()]

        def log(count: int, result: SimulationResult) -> None:
            if time.monotonic() - last_log[0] >= 5:
                last_log[0] = time.monotonic()
                logger.info("race %s: %d/%d messages, %.0f/s", spec.race_id, result.sent, total, result.rate)

        return simulator.play(spec, racers, speed=speed, stop=stop, progress=log)

    def _demo(self, simulator: Simulator, *, racers: int, stop: threading.Event) -> None:
        """Fill every enabled class's current race; start on the next one as rotation creates it."""
        playing: dict[int, threading.Thread] = {}
        figures: dict[int, SimulationResult] = {}
        last_log = time.monotonic()
        self.stdout.write(f"Demo simulator: {racers} racers in every class's current race (SIMULATE=0 turns it off).")
        while not stop.is_set():
            classes = race_class_list_with_current()
            for index, entry in enumerate(classes):
                race = entry.current
                if race is None or race.pk in playing:
                    continue
                race_identities_publish(races=[race])  # idempotent; rotation publishes it too
                spec = _race_spec(race, seconds=None, from_now=True)
                pairs = _racer_pairs(
                    racers,
                    offset=index,
                    stride=max(1, len(classes)),
                    synthetic_base=SYNTHETIC_RACER_BASE + entry.race_class.pk * 1000,
                )
                figures[race.pk] = result = SimulationResult()

                def play(spec=spec, pairs=pairs, result=result) -> None:
                    done = simulator.play(spec, profiles(pairs), stop=stop, progress=lambda _n, r: None)
                    result.sent, result.lost = done.sent, done.lost

                thread = threading.Thread(target=play, name=f"race-{race.pk}", daemon=True)
                playing[race.pk] = thread
                thread.start()
                logger.info(
                    "race %s (%s): %d racers from second %d to %d",
                    race.pk,
                    entry.race_class.name,
                    len(pairs),
                    spec.first_second,
                    spec.last_second,
                )
            current = {entry.current.pk for entry in classes if entry.current is not None}
            for race_id in [race_id for race_id, thread in playing.items() if not thread.is_alive()]:
                result = figures.pop(race_id, None)
                if result is not None:
                    logger.info("race %s done: %d messages sent, %d lost", race_id, result.sent, result.lost)
                # forget it once the race is no longer current, so it is never started twice
                if race_id not in current:
                    del playing[race_id]
            if time.monotonic() - last_log > 30:
                last_log = time.monotonic()
                logger.info("playing %d races", sum(thread.is_alive() for thread in playing.values()))
            stop.wait(DEMO_POLL_SECONDS)
        for thread in playing.values():
            thread.join(timeout=10)
