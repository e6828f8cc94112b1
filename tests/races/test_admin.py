"""The admin: staff see every page; anonymous and non-staff users go to the login page."""

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse
from django.utils import timezone

from races.models import Race
from tests.factories import RaceClassFactory, RaceFactory, RacerFactory, RaceScheduleFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client):
    user = get_user_model().objects.create_superuser("staff", "staff@example.com", "pw-staff-123")
    client.force_login(user)
    return client


@pytest.fixture
def seeded():
    schedule = RaceScheduleFactory(starts_at=datetime(2026, 1, 1, tzinfo=UTC))
    race = RaceFactory(race_class=schedule.race_class, schedule=schedule)
    racer = RacerFactory()
    return {"schedule": schedule, "race": race, "racer": racer, "race_class": schedule.race_class}


ADMIN_PAGES = [
    ("admin:races_raceclass_changelist", None),
    ("admin:races_raceclass_change", "race_class"),
    ("admin:races_racer_changelist", None),
    ("admin:races_racer_change", "racer"),
    ("admin:races_raceschedule_changelist", None),
    ("admin:races_raceschedule_change", "schedule"),
    ("admin:races_raceschedule_add", None),
    ("admin:races_race_changelist", None),
    ("admin:races_race_change", "race"),
    ("admin:races_race_add", None),
    ("admin:django_celery_beat_periodictask_changelist", None),
]


def _url(name, key, seeded):
    return reverse(name, args=[seeded[key].pk]) if key else reverse(name)


@pytest.mark.parametrize("name, key", ADMIN_PAGES)
def test_admin_pages_load_for_staff(staff_client, seeded, name, key):
    response = staff_client.get(_url(name, key, seeded))
    assert response.status_code == 200


@pytest.mark.parametrize("name, key", ADMIN_PAGES)
def test_anonymous_users_are_sent_to_login(client, seeded, name, key):
    response = client.get(_url(name, key, seeded))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_non_staff_users_are_sent_to_login(client, seeded):
    user = get_user_model().objects.create_user("racer", password="pw-racer-123")
    client.force_login(user)
    response = client.get(reverse("admin:races_race_changelist"))
    assert response.status_code == 302
    assert reverse("admin:login") in response["Location"]


def test_race_changelist_filters_and_search(staff_client, seeded):
    response = staff_client.get(reverse("admin:races_race_changelist"), {"status__exact": "scheduled", "q": "Class"})
    assert response.status_code == 200
    assert seeded["race"] in response.context["cl"].result_list


def test_cancel_action_goes_through_the_service(staff_client, seeded):
    race = seeded["race"]
    response = staff_client.post(
        reverse("admin:races_race_changelist"), {"action": "cancel", "_selected_action": [race.pk]}, follow=True
    )
    assert response.status_code == 200
    race.refresh_from_db()
    assert race.status == Race.Status.CANCELLED


def test_finish_action_reports_a_broken_rule_as_a_message(staff_client, seeded):
    race = seeded["race"]  # June 2026: still in the future? use a future race to be sure
    race.starts_at = timezone.now() + timedelta(days=1)
    race.ends_at = race.starts_at + timedelta(minutes=5)
    race.save()
    response = staff_client.post(
        reverse("admin:races_race_changelist"), {"action": "finish_now", "_selected_action": [race.pk]}, follow=True
    )
    assert response.status_code == 200
    messages = [str(m) for m in response.context["messages"]]
    assert any("cancel it instead" in m for m in messages)
    race.refresh_from_db()
    assert race.status == Race.Status.SCHEDULED


def test_adding_an_overlapping_one_off_race_shows_an_error(staff_client, seeded):
    race = seeded["race"]
    response = staff_client.post(
        reverse("admin:races_race_add"),
        {
            "race_class": race.race_class_id,
            "starts_at_0": "2026-06-01",
            "starts_at_1": "12:02:00",
            "ends_at_0": "2026-06-01",
            "ends_at_1": "12:07:00",
            "status": "scheduled",
        },
    )
    assert response.status_code == 200
    assert "Overlaps" in response.content.decode()
    assert Race.objects.filter(race_class=race.race_class).count() == 1


def test_race_class_list_shows_the_current_race(staff_client):
    race_class = RaceClassFactory()
    now = timezone.now()
    race = RaceFactory(race_class=race_class, starts_at=now - timedelta(minutes=1), status=Race.Status.ACTIVE)
    response = staff_client.get(reverse("admin:races_raceclass_changelist"))
    assert f">{race.pk}<" in response.content.decode()


def test_admin_index_links_to_the_pipeline_page(staff_client):
    response = staff_client.get(reverse("admin:index"))
    assert response.status_code == 200
    assert reverse("admin-pipeline") in response.content.decode()
