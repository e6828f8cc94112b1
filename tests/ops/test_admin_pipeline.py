"""The staff pipeline page shows the runner's status file figures."""

from __future__ import annotations

import json
import time

import pytest
from django.contrib.auth import get_user_model

from processors.local.events import iso_ms

pytestmark = pytest.mark.django_db


def write_status(path, *, updated: float, running: bool = True) -> None:
    path.write_text(
        json.dumps(
            {
                "updatedAt": iso_ms(updated),
                "startedAt": iso_ms(updated - 60),
                "pid": 4242,
                "running": running,
                "endpoint": "http://127.0.0.1:4566",
                "sources": [
                    {"name": "aggregator ← alleycat-bikes", "function": "aggregator", "kind": "kinesis", "shards": 2,
                     "lagMs": 1234, "recordsPerSecond": 987.5, "records": 50000, "invocations": 80, "errors": 3,
                     "deadLetters": 7, "lastError": "RuntimeError: boom"},
                ],
                "deadLetterQueue": {"name": "alleycat-dead-letter", "approximateMessages": 11},
            }
        )
    )  # fmt: skip


@pytest.fixture
def status_file(tmp_path, settings):
    settings.ALLEYCAT_PIPELINE_STATUS_FILE = tmp_path / "pipeline-status.json"
    return settings.ALLEYCAT_PIPELINE_STATUS_FILE


def test_staff_see_lag_rate_errors_and_dead_letters(client, status_file):
    user = get_user_model().objects.create_user("staff", password="pw-staff-123", is_staff=True)
    client.force_login(user)
    write_status(status_file, updated=time.time())
    page = client.get("/admin/pipeline/")
    assert page.status_code == 200
    html = page.content.decode()
    for figure in ("aggregator ← alleycat-bikes", "1234 ms", "987.5", "RuntimeError: boom", "11 messages waiting"):
        assert figure in html
    assert "not reporting" not in html
    assert client.get("/admin/pipeline/?format=json").json()["sources"][0]["deadLetters"] == 7


def test_old_figures_are_flagged_and_a_missing_file_explained(client, status_file):
    client.force_login(get_user_model().objects.create_user("staff", password="pw-staff-123", is_staff=True))
    assert "has not written" in client.get("/admin/pipeline/").content.decode()
    write_status(status_file, updated=time.time() - 120)
    assert "not reporting" in client.get("/admin/pipeline/").content.decode()


def test_non_staff_are_sent_to_the_login_page(client, status_file):
    client.force_login(get_user_model().objects.create_user("racer", password="pw-racer-123"))
    response = client.get("/admin/pipeline/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
