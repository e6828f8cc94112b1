"""Create the staff account for the admin if it does not exist.

Credentials come from ALLEYCAT_ADMIN_USERNAME / ALLEYCAT_ADMIN_PASSWORD; without a password
one is generated, printed once, and kept in var/admin-credentials.txt (git-ignored, mode 600).
"""

import os

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from alleycat_site.credentials import credentials_file_write, password_generate


class Command(BaseCommand):
    help = "Create the staff (superuser) account used for the admin, once."

    def handle(self, *args, **options):
        username = os.environ.get("ALLEYCAT_ADMIN_USERNAME") or "admin"
        password = os.environ.get("ALLEYCAT_ADMIN_PASSWORD")
        credentials_file = settings.VAR_DIR / "admin-credentials.txt"
        user_model = get_user_model()
        if user_model.objects.filter(username=username).exists():
            where = f" (password in {credentials_file})" if credentials_file.exists() else ""
            self.stdout.write(f"Staff account '{username}' exists{where}.")
            return
        generated = password is None
        if generated:
            password = password_generate()
        user_model.objects.create_superuser(username=username, email="", password=password)
        if generated:
            credentials_file_write(path=credentials_file, username=username, password=password)
            self.stdout.write(
                self.style.WARNING(
                    f"Created staff account '{username}' with password '{password}' "
                    f"(kept in {credentials_file}; shown only this once)."
                )
            )
        else:
            self.stdout.write(self.style.SUCCESS(f"Created staff account '{username}' from the environment."))
