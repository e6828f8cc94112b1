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
    ("admin:races_racer_import", None),
    ("admin:races_resultvoid_changelist", None),
    ("admin:django_celery_beat_periodictask_changelist", None),
]


def _url(name, key, seeded):
    return reverse(name, args=[seeded[key].pk]) if key else reverse(name)


@pytest.mark.parametrize("name, key", ADMIN_PAGES)
def test_admin_pages_load_for_staff(admin_client, seeded, name, key):
    response = admin_client.get(_url(name, key, seeded))
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


def test_race_changelist_filters_and_search(admin_client, seeded):
    response = admin_client.get(reverse("admin:races_race_changelist"), {"status__exact": "scheduled", "q": "Class"})
    assert response.status_code == 200
    assert seeded["race"] in response.context["cl"].result_list


def test_cancel_action_goes_through_the_service(admin_client, seeded):
    race = seeded["race"]
    response = admin_client.post(
        reverse("admin:races_race_changelist"), {"action": "cancel", "_selected_action": [race.pk]}, follow=True
    )
    assert response.status_code == 200
    race.refresh_from_db()
    assert race.status == Race.Status.CANCELLED


def test_finish_action_reports_a_broken_rule_as_a_message(admin_client, seeded):
    race = seeded["race"]  # June 2026: still in the future? use a future race to be sure
    race.starts_at = timezone.now() + timedelta(days=1)
    race.ends_at = race.starts_at + timedelta(minutes=5)
    race.save()
    response = admin_client.post(
        reverse("admin:races_race_changelist"), {"action": "finish_now", "_selected_action": [race.pk]}, follow=True
    )
    assert response.status_code == 200
    messages = [str(m) for m in response.context["messages"]]
    assert any("cancel it instead" in m for m in messages)
    race.refresh_from_db()
    assert race.status == Race.Status.SCHEDULED


def test_adding_an_overlapping_one_off_race_shows_an_error(admin_client, seeded):
    race = seeded["race"]
    response = admin_client.post(
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


def test_race_class_list_shows_the_current_race(admin_client):
    race_class = RaceClassFactory()
    now = timezone.now()
    race = RaceFactory(race_class=race_class, starts_at=now - timedelta(minutes=1), status=Race.Status.ACTIVE)
    response = admin_client.get(reverse("admin:races_raceclass_changelist"))
    assert f">{race.pk}<" in response.content.decode()


def test_admin_index_links_to_the_pipeline_page(admin_client):
    response = admin_client.get(reverse("admin:index"))
    assert response.status_code == 200
    assert reverse("admin-pipeline") in response.content.decode()


def _race_form(race, **changes):
    data = {
        "race_class": race.race_class_id,
        "starts_at_0": f"{race.starts_at:%Y-%m-%d}",
        "starts_at_1": f"{race.starts_at:%H:%M:%S}",
        "ends_at_0": f"{race.ends_at:%Y-%m-%d}",
        "ends_at_1": f"{race.ends_at:%H:%M:%S}",
    }
    data.update(changes)
    return data


def _when(field: str, moment: datetime) -> dict[str, str]:
    """Both halves of a split date-time field: a time alone would keep the old date across midnight."""
    return {f"{field}_0": f"{moment:%Y-%m-%d}", f"{field}_1": f"{moment:%H:%M:%S}"}


def test_adding_a_race_goes_through_the_service(admin_client, seeded):
    race_class = seeded["race_class"]
    template = RaceFactory.build(race_class=race_class, starts_at=datetime(2030, 7, 1, 9, 0, tzinfo=UTC))
    response = admin_client.post(reverse("admin:races_race_add"), _race_form(template, status="cancelled"))
    assert response.status_code == 302
    added = Race.objects.get(race_class=race_class, starts_at=template.starts_at)
    assert added.schedule is None  # a one-off race
    assert added.status == Race.Status.SCHEDULED  # status is not a form field


def test_status_and_schedule_are_read_only_in_the_change_form(admin_client, seeded):
    race = RaceFactory(race_class=seeded["race_class"], starts_at=datetime(2030, 1, 1, 12, 0, tzinfo=UTC))
    response = admin_client.get(reverse("admin:races_race_change", args=[race.pk]))
    form = response.context["adminform"].form
    assert "status" not in form.fields and "schedule" not in form.fields
    later = race.starts_at + timedelta(days=1)
    response = admin_client.post(
        reverse("admin:races_race_change", args=[race.pk]),
        _race_form(race, status="finished", starts_at_0=f"{later:%Y-%m-%d}", ends_at_0=f"{later:%Y-%m-%d}"),
    )
    assert response.status_code == 302 and response["Location"] == reverse("admin:races_race_changelist")
    race.refresh_from_db()
    assert race.starts_at == later and race.status == Race.Status.SCHEDULED


def test_a_running_race_keeps_its_start_with_the_reason_as_a_message(admin_client, seeded):
    now = timezone.now().replace(microsecond=0)
    race = RaceFactory(race_class=seeded["race_class"], starts_at=now - timedelta(minutes=1), status="active")
    moved = race.starts_at + timedelta(seconds=30)
    response = admin_client.post(
        reverse("admin:races_race_change", args=[race.pk]),
        _race_form(race, **_when("starts_at", moved)),
        follow=True,
    )
    assert response.status_code == 200
    assert any("keeps its class and start" in str(m) for m in response.context["messages"])
    race.refresh_from_db()
    assert race.starts_at == now - timedelta(minutes=1)
    # its end may move
    later_end = race.ends_at + timedelta(minutes=2)
    response = admin_client.post(
        reverse("admin:races_race_change", args=[race.pk]), _race_form(race, **_when("ends_at", later_end))
    )
    assert response.status_code == 302
    race.refresh_from_db()
    assert race.ends_at == later_end


def test_a_finished_race_cannot_be_changed(admin_client, seeded):
    race = RaceFactory(race_class=seeded["race_class"], starts_at=datetime(2025, 1, 1, tzinfo=UTC), status="finished")
    response = admin_client.post(
        reverse("admin:races_race_change", args=[race.pk]), _race_form(race, ends_at_1="00:03:00"), follow=True
    )
    assert any("cannot be changed" in str(m) for m in response.context["messages"])
    race.refresh_from_db()
    assert race.duration == timedelta(minutes=5)
