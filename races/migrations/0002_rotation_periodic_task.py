"""Create the periodic task that rotates races every 5 minutes.

It is a django-celery-beat row, so staff see it in the admin and can pause it there.
Cron "*/5 * * * *": https://crontab.guru/#*/5_*_*_*_*
"""

from django.conf import settings
from django.db import migrations

TASK_NAME = "Rotate races every 5 minutes"


def create_task(apps, schema_editor):
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    crontab, _ = CrontabSchedule.objects.get_or_create(
        minute="*/5", hour="*", day_of_week="*", day_of_month="*", month_of_year="*", timezone=settings.TIME_ZONE
    )
    PeriodicTask.objects.update_or_create(
        name=TASK_NAME,
        defaults={
            "task": "races.rotate",
            "crontab": crontab,
            "enabled": True,
            "description": "Finishes ended races, starts the current one and schedules the next (races.rotate).",
        },
    )


def delete_task(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=TASK_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("races", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_task, delete_task)]
