"""Import 40,000 racers from one CSV file through the admin (django-import-export), timed.

Runs Django in-process on a fresh SQLite database in a temporary ALLEYCAT_VAR_DIR, logs in a staff
user with Django's test client, and times what staff do: upload the file (the import runs as a dry
run and shows the preview), then confirm (the import runs for real). Then the same file again
with every tenth name changed (40,000 rows read, 4,000 updated). Target: one import of 40,000
racers within a minute (upload + confirm). Names are Faker names (``processors.local.names``).

    .venv/bin/python bench/bench_import_racers.py [--racers 40000]
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _csv(names: dict[int, str]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["racer_id", "name"])
    writer.writerows(names.items())
    return out.getvalue().encode()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--racers", type=int, default=40_000)
    args = parser.parse_args()
    var_dir = tempfile.mkdtemp(prefix="alleycat-bench-import-")
    os.environ.update(
        DJANGO_SETTINGS_MODULE="alleycat_site.settings", DJANGO_DEBUG="1", ALLEYCAT_VAR_DIR=var_dir, DATABASE_URL=""
    )
    os.environ.pop("DATABASE_URL")
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.core.management import call_command
    from django.test import Client
    from django.test.utils import setup_test_environment
    from django.urls import reverse

    from processors.local.names import distinct_names
    from races.models import Racer

    setup_test_environment()  # the test client then records each response's template context (the confirm form)
    call_command("migrate", verbosity=0)
    user = get_user_model().objects.create_superuser("bench", "bench@example.com", "pw-bench-123")
    client = Client()
    client.force_login(user)
    names = distinct_names(range(1, args.racers + 1))

    def one_import(data: bytes, label: str) -> None:
        started, cpu_started = time.perf_counter(), time.process_time()
        upload = SimpleUploadedFile("racers.csv", data, content_type="text/csv")
        preview = client.post(reverse("admin:races_racer_import"), {"import_file": upload, "format": "0"})
        previewed = time.perf_counter()
        form = preview.context["confirm_form"] if preview.context else None
        if form is None:
            raise SystemExit(f"{label}: no confirm form (status {preview.status_code})")
        confirm = {name: form.initial.get(name, field.initial) for name, field in form.fields.items()}
        done = client.post(reverse("admin:races_racer_process_import"), confirm)
        finished, cpu = time.perf_counter(), time.process_time() - cpu_started
        if done.status_code != 302:
            raise SystemExit(f"{label}: confirm answered {done.status_code}")
        load = os.getloadavg()[0]
        print(
            f"{label}: upload + preview {previewed - started:.1f} s, confirm {finished - previewed:.1f} s, "
            f"total {finished - started:.1f} s, CPU {cpu:.1f} s ({len(data) / 1e6:.1f} MB, load {load:.1f})"
        )

    one_import(_csv(names), f"{args.racers:,} new racers")
    assert Racer.objects.count() == args.racers
    changed = {racer_id: (f"{name} Jr" if racer_id % 10 == 0 else name) for racer_id, name in names.items()}
    one_import(_csv(changed), f"{args.racers:,} racers, every tenth renamed")
    assert Racer.objects.get(racer_id=10).name.endswith(" Jr")


if __name__ == "__main__":
    main()
