"""The Celery app. Tasks live in each app's ``tasks.py``; periodic tasks are rows of
django-celery-beat (created by the data migration ``races.0002``), so staff see and pause
them in the admin. Run exactly one beat process."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "alleycat_site.settings")

app = Celery("alleycat")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
