"""Create the demo rider account (user ``rider``, linked to racer 1) for the ride page, once.

The password comes from ALLEYCAT_RIDER_PASSWORD; without it one is generated, printed once and
kept in var/rider-credentials.txt (git-ignored, mode 600). Run after ``seed_demo``.
"""

import os

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from alleycat_site.credentials import credentials_file_write, password_generate
from races.models import Racer

USERNAME = "rider"
RACER_ID = 1


class Command(BaseCommand):
    help = "Create the demo rider account (user 'rider' linked to racer 1), once."

    @transaction.atomic
    def handle(self, *args, **options):
        credentials_file = settings.VAR_DIR / "rider-credentials.txt"
        racer = Racer.objects.select_for_update().filter(pk=RACER_ID).first()
        if racer is None:
            self.stdout.write(self.style.WARNING(f"Racer {RACER_ID} does not exist (run seed_demo first); no rider."))
            return
        user_model = get_user_model()
        user = user_model.objects.filter(username=USERNAME).first()
        if user is not None:
            if racer.user_id is None:
                racer.user = user
                racer.save(update_fields=["user"])
            where = f" (password in {credentials_file})" if credentials_file.exists() else ""
            self.stdout.write(f"Rider account '{USERNAME}' exists{where}.")
            return
        if racer.user_id is not None:
            self.stdout.write(self.style.WARNING(f"Racer {RACER_ID} is already linked to another account; no rider."))
            return
        password = os.environ.get("ALLEYCAT_RIDER_PASSWORD")
        generated = not password
        if generated:
            password = password_generate()
        user = user_model.objects.create_user(username=USERNAME, password=password)
        racer.user = user
        racer.save(update_fields=["user"])
        if generated:
            credentials_file_write(path=credentials_file, username=USERNAME, password=password)
            self.stdout.write(
                self.style.WARNING(
                    f"Created rider account '{USERNAME}' (racer {RACER_ID}, {racer.name}) with password "
                    f"'{password}' (kept in {credentials_file}; shown only this once)."
                )
            )
        else:
            self.stdout.write(self.style.SUCCESS(f"Created rider account '{USERNAME}' from the environment."))
