"""Seed demo data on the first run: 6 classes, 40 racers, a continuous schedule per class.

Does nothing when any race class exists, so `make run` can call it every time.
"""

from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

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

FIRST_NAMES = [
    "Ada", "Bo", "Cleo", "Dev", "Eli", "Fay", "Gus", "Hana", "Ike", "Jo",
    "Kai", "Lux", "Mo", "Nia", "Oz", "Pia", "Quin", "Ren", "Sol", "Tove",
]  # fmt: skip
LAST_NAMES = ["Pedal", "Spoke", "Crank", "Chain"]


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
        for index in range(40):
            racer_id = index + 1
            name = f"{FIRST_NAMES[index % len(FIRST_NAMES)]} {LAST_NAMES[index // len(FIRST_NAMES) % len(LAST_NAMES)]}"
            Racer.objects.get_or_create(racer_id=racer_id, defaults={"name": name})
        result = race_rotate()
        self.stdout.write(
            self.style.SUCCESS(
                f"Seeded {len(DEMO_CLASSES)} classes, 40 racers, schedules from {start:%H:%M} UTC; "
                f"{len(result.created)} races created."
            )
        )
