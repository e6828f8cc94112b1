"""Racers from a CSV file through the admin (django-import-export): preview, confirm, errors."""

from __future__ import annotations

import re

import pytest
from django.contrib.admin.models import LogEntry
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from races.models import Racer

pytestmark = pytest.mark.django_db


def _upload(client, text: str):
    upload = SimpleUploadedFile("racers.csv", text.encode(), content_type="text/csv")
    return client.post(reverse("admin:races_racer_import"), {"import_file": upload, "format": "0", "resource": "0"})


def _confirm(client, preview):
    form = preview.context["confirm_form"]
    data = {name: form.initial.get(name, field.initial) for name, field in form.fields.items()}
    return client.post(reverse("admin:races_racer_process_import"), data, follow=True)


def test_import_creates_and_updates_racers_after_a_preview(admin_client):
    Racer.objects.create(racer_id=2, name="Old Name")
    preview = _upload(admin_client, "racer_id,name\n1,Ada Lovelace\n2,Grace Hopper\n3,Émile Zola\n")
    assert preview.status_code == 200 and preview.context.get("confirm_form") is not None
    assert not Racer.objects.filter(racer_id=1).exists()  # the preview is a dry run
    page = re.sub(r"\s+", " ", preview.content.decode())
    assert "3 rows: 2 new, 1 updated, 0 unchanged." in page and "Émile Zola (#3)" in page
    done = _confirm(admin_client, preview)
    assert done.status_code == 200
    assert dict(Racer.objects.values_list("racer_id", "name")) == {
        1: "Ada Lovelace",
        2: "Grace Hopper",
        3: "Émile Zola",
    }
    # the same file again: nothing to change
    again = _upload(admin_client, "racer_id,name\n1,Ada Lovelace\n2,Grace Hopper\n3,Émile Zola\n")
    assert "3 rows: 0 new, 0 updated, 3 unchanged." in re.sub(r"\s+", " ", again.content.decode())
    entry = LogEntry.objects.get(content_type__model="racer")  # one entry for the import, not one per racer
    assert entry.object_repr == "CSV import: 2 new, 1 updated, 0 unchanged" and entry.user.username == "admin"


@pytest.mark.parametrize(
    "text, message",
    [
        ("racer_id,name\n1,Ada\n1,Bea\n", "repeated: 1"),
        ("id,name\n1,Ada\n", "racer_id and name"),
        ("racer_id,name\n-4,Ada\n", "greater than or equal to 0"),
        ("racer_id,name\nseven,Ada\n", "racer_id must be a whole number, not &#x27;seven&#x27;"),
        (f"racer_id,name\n5,{'x' * 65}\n", "at most 64 characters"),
    ],
)
def test_bad_files_are_refused_with_the_reason_and_import_nothing(admin_client, text, message):
    preview = _upload(admin_client, text)
    assert preview.status_code == 200
    assert preview.context.get("confirm_form") is None
    page = re.sub(r"\s+", " ", preview.content.decode())
    assert message in page
    assert not Racer.objects.exists()
