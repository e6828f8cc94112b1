"""Seed demo data on the first run: 6 classes, 150 racers, a continuous schedule per class.

Racer names are Faker names seeded by racer id (``processors.local.names``): plausible, distinct,
the same on every machine.

Does nothing when any race class exists, so `make run` can call it every time.
"""

from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from processors.local.names import distinct_names
from races.models import RaceClass, Racer, RaceSchedule
from races.services import floor_to_boundary, race_rotate

DEMO_CLASSES = [
    ("Sprint", "Flat out for five minutes. No excuses."),
    ("Hill Climb", "Heavy resistance, grinding cadence."),
    ("Intervals", "Surge, recover, surge again."),
    ("Endurance", "Hold a steady, high output."),
    ("Time Trial", "You against the clock and the ghost of your best."),
    ("Recovery", "Easy spin. Still a race."),
]

# Enough racers for the demo simulator to fill every class's race (24 each) with real Racer
# rows (racer pages, names), plus racer 1, the demo rider, whom the simulator leaves alone.
DEMO_RACERS = 150


class Command(BaseCommand):
    help = "Create demo classes, racers and schedules (first run only)."

    def add_arguments(self, parser):
        parser.add_argument("--force", action="store_true", help="Seed even if classes exist (adds missing rows).")

    @transaction.atomic
    def handle(self, *args, force: bool = False, **options):
        if RaceClass.objects.exists() and not force:
            self.stdout.write("Demo data already present; nothing to seed.")
            return
        start = floor_to_boundary(timezone.now())
        for order, (name, description) in enumerate(DEMO_CLASSES, start=1):
            race_class, _ = RaceClass.objects.get_or_create(
                name=name, defaults={"description": description, "display_order": order}
            )
            if not race_class.schedules.exists():
                RaceSchedule.objects.create(race_class=race_class, starts_at=start, race_minutes=5)
        existing = set(Racer.objects.filter(racer_id__lte=DEMO_RACERS).values_list("racer_id", flat=True))
        taken = Racer.objects.values_list("name", flat=True)
        names = distinct_names((i for i in range(1, DEMO_RACERS + 1) if i not in existing), taken=taken)
        Racer.objects.bulk_create([Racer(racer_id=racer_id, name=name) for racer_id, name in names.items()])
        result = race_rotate()
        self.stdout.write(
            self.style.SUCCESS(
                f"Seeded {len(DEMO_CLASSES)} classes, {DEMO_RACERS} racers, schedules from {start:%H:%M} UTC; "
                f"{len(result.created)} races created."
            )
        )
