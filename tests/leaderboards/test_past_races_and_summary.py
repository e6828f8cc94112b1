"""Past races of a class, previous/next race on the results page, and a racer's race summary
(API and racer page); results on moto's DynamoDB, seeded through the table module."""

from __future__ import annotations

import pytest

from races.models import Race, Racer
from tests.leaderboards.conftest import seed_finals, seed_live

pytestmark = pytest.mark.django_db


@pytest.fixture
def three_races(table, make_race):
    """Three ended races of the class, oldest first, and a running one."""
    races = [make_race(start_minutes=-40 + 10 * i, status=Race.Status.FINISHED) for i in range(3)]
    running = make_race(start_minutes=-1, status=Race.Status.ACTIVE)
    return races, running


def test_class_page_lists_past_races_newest_first_with_winner_and_count(client, table, three_races, race_class):
    (oldest, middle, newest), running = three_races
    seed_live(table, newest, {1: ("Ada", {1: 100.0}, 5), 2: ("Bo", {1: 90.0}, 6), 3: ("Cleo", {1: 10.0}, None)})
    seed_finals(table, newest, {1: 500.0, 2: 450.0}, names={1: "Ada", 2: "Bo"})
    seed_live(table, oldest, {2: ("Bo", {1: 80.0}, 7)})
    seed_finals(table, oldest, {2: 300.0}, names={2: "Bo"})
    html = client.get(f"/classes/{race_class.pk}/").content.decode()
    past = html.split('id="past-races-table"')[1].split("</table>")[0]
    order = [past.index(f'data-race-id="{race.pk}"') for race in (newest, middle, oldest)]
    assert order == sorted(order)
    assert f'data-race-id="{running.pk}"' not in past  # running: not a past race
    newest_row = past.split(f'data-race-id="{newest.pk}"')[1].split("</tr>")[0]
    assert f'href="/races/{newest.pk}/"' in newest_row
    assert ">Ada</a>" in newest_row and "500.0" in newest_row
    assert '<td class="num">3</td>' in newest_row  # two finishers and a DNF rode
    middle_row = past.split(f'data-race-id="{middle.pk}"')[1].split("</tr>")[0]
    assert "<td>–</td>" in middle_row and '<td class="num">0</td>' in middle_row


def test_past_races_are_paginated(client, table, make_race, race_class):
    races = [make_race(start_minutes=-200 + 10 * i, status=Race.Status.FINISHED) for i in range(12)]
    first = client.get(f"/classes/{race_class.pk}/").content.decode()
    assert first.count("<tr data-race-id=") == 10
    href = first.split('rel="next" href="')[1].split('"')[0].replace("&amp;", "&")
    assert href.startswith("?races=")
    second = client.get(f"/classes/{race_class.pk}/{href.split('#')[0]}").content.decode()
    listed = second.split('id="past-races-table"')[1]
    assert listed.count("<tr data-race-id=") == 2
    assert f'data-race-id="{races[1].pk}"' in listed and f'data-race-id="{races[0].pk}"' in listed
    assert "Newest races" in second
    assert client.get(f"/classes/{race_class.pk}/?races=forged").status_code == 400


def test_results_page_links_previous_and_next_race_of_the_class(client, table, three_races):
    (oldest, middle, newest), running = three_races
    html = client.get(f"/races/{middle.pk}/").content.decode()
    assert f'id="previous-race" href="/races/{oldest.pk}/"' in html
    assert f'id="next-race" href="/races/{newest.pk}/"' in html
    first = client.get(f"/races/{oldest.pk}/").content.decode()
    assert 'id="previous-race"' not in first and f'id="next-race" href="/races/{middle.pk}/"' in first


def test_summary_rank_of_n_personal_best_and_previous_race(client, table, three_races):
    (oldest, middle, newest), _running = three_races
    seed_finals(table, oldest, {7: 400.0, 8: 100.0})
    seed_live(table, newest, {7: ("Ada", {1: 1.0}, 1), 8: ("Bo", {1: 1.0}, 2), 9: ("Cleo", {1: 1.0}, None)})
    seed_finals(table, newest, {7: 450.0, 8: 600.0})
    body = client.get(f"/api/racers/7/races/{newest.pk}/").json()
    assert body == {
        "race_id": newest.pk,
        "class_id": newest.race_class_id,
        "racer_id": 7,
        "name": "Racer 7",
        "status": "finished",
        "rank": 2,
        "total": 3,
        "score": 450.0,
        "best_score": 450.0,
        "personal_best": True,
        "previous": {"race_id": oldest.pk, "score": 400.0},
    }
    dnf = client.get(f"/api/racers/9/races/{newest.pk}/").json()
    assert dnf["status"] == "dnf" and dnf["rank"] is None and dnf["previous"] is None
    assert client.get(f"/api/racers/42/races/{newest.pk}/").status_code == 404
    assert client.get("/api/racers/7/races/99999/").status_code == 404


def test_summary_when_worse_than_last_race_and_on_the_racer_page(client, table, three_races):
    (oldest, middle, newest), _running = three_races
    Racer.objects.create(racer_id=7, name="Ada Pedal")
    seed_finals(table, oldest, {7: 400.0})
    seed_finals(table, newest, {7: 350.0})
    body = client.get(f"/api/racers/7/races/{newest.pk}/").json()
    assert body["personal_best"] is False and body["best_score"] == 400.0
    assert body["rank"] == 1 and body["total"] == 1
    html = client.get("/racers/7/").content.decode()
    summary = html.split('id="race-summary"')[1].split("</section>")[0]
    assert f'href="/races/{newest.pk}/">#{newest.pk}</a>' in summary
    assert '<dd id="summary-rank">1 <span class="of">of 1</span></dd>' in summary
    assert '<dd id="summary-score">350.0</dd>' in summary
    assert "No, best 400.0" in summary
    assert f"#{oldest.pk}: 400.0" in summary and '<span class="behind">-50.0</span>' in summary


def test_schema_documents_the_summary(client):
    import orjson

    schema = orjson.loads(client.get("/api/schema/", headers={"accept": "application/vnd.oai.openapi+json"}).content)
    operation = schema["paths"]["/api/racers/{racer_id}/races/{race_id}/"]["get"]
    assert {"200", "404", "503"} <= set(operation["responses"])
    assert "personal_best" in schema["components"]["schemas"]["RacerRaceSummary"]["properties"]
