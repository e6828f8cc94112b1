"""GET /api/classes/ and /api/classes/<id>/current-race/."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from races.models import Race
from tests.factories import RaceClassFactory, RaceFactory

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def racing():
    race_class = RaceClassFactory(name="Sprint")
    current = RaceFactory(race_class=race_class, starts_at=T0, status=Race.Status.ACTIVE)
    upcoming = RaceFactory(race_class=race_class, starts_at=T0 + timedelta(minutes=5))
    return race_class, current, upcoming


def test_current_race_of_a_class(client, racing):
    race_class, current, _ = racing
    with time_machine.travel(T0 + timedelta(minutes=1, seconds=30), tick=False):
        response = client.get(f"/api/classes/{race_class.pk}/current-race/")
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == current.pk
    assert body["class_id"] == race_class.pk
    assert body["seconds_remaining"] == 210
    assert body["status"] == "active"
    assert body["starts_at"].startswith("2026-06-01T12:00:00")


def test_current_race_follows_the_clock_even_before_rotation_runs(client, racing):
    race_class, _, upcoming = racing
    with time_machine.travel(T0 + timedelta(minutes=5, seconds=1), tick=False):
        body = client.get(f"/api/classes/{race_class.pk}/current-race/").json()
    assert body["id"] == upcoming.pk


def test_unknown_class_is_a_json_404(client):
    response = client.get("/api/classes/999/current-race/")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"]["code"] == "not_found"


def test_no_current_race_is_a_json_404_that_says_so(client, racing):
    race_class, _, upcoming = racing
    with time_machine.travel(T0 - timedelta(minutes=30), tick=False):
        response = client.get(f"/api/classes/{race_class.pk}/current-race/")
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "no_current_race"
    assert "no race running" in error["message"]
    assert error["nextRaceStartsAt"].startswith("2026-06-01T12:00:00")


def test_class_list_with_current_race(client, racing, django_assert_num_queries):
    race_class, current, upcoming = racing
    RaceClassFactory(name="Idle")
    RaceClassFactory(name="Hidden", enabled=False)
    with time_machine.travel(T0 + timedelta(seconds=10), tick=False):
        with django_assert_num_queries(2):
            response = client.get("/api/classes/")
    assert response.status_code == 200
    rows = response.json()
    assert [row["name"] for row in rows] == ["Sprint", "Idle"]
    assert rows[0]["current_race"]["id"] == current.pk
    assert rows[0]["next_race"]["id"] == upcoming.pk
    assert rows[1]["current_race"] is None


def test_unknown_api_path_is_json_404(client):
    response = client.get("/api/nothing-here/")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_writes_are_refused_for_anonymous_users(client, racing):
    response = client.post("/api/classes/", {})
    assert response.status_code in (403, 405)
    assert "error" in response.json()
