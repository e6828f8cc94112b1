"""Web pages: status, key content, query counts; results read from the table module on moto."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse
from django.utils import timezone

from leaderboards import integrations
from processors import clients
from processors.config import get_config
from processors.domain.window import new_state
from processors.table import FinalResult, PersonalBest, create_table, get_results_table
from races.models import Race, RaceClass, Racer
from tests.conftest import free_port
from tests.processors.factories import fold_readings, make_reading

pytestmark = pytest.mark.django_db


def _clear_table_caches() -> None:
    integrations.clients_clear()
    clients.clear()


@pytest.fixture
def table(aws):
    """The results table, freshly created on the moto server of this test."""
    _clear_table_caches()
    create_table(clients.aws_client("dynamodb"), get_config().table_name)
    yield get_results_table()
    _clear_table_caches()


@pytest.fixture
def store_down(monkeypatch):
    """DynamoDB unreachable: the endpoint points at a closed port on 127.0.0.1."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    _clear_table_caches()
    yield
    _clear_table_caches()


def seed_live(table, race: Race, riders: dict[int, tuple[str, list[float]]], finished: set[int] = frozenset()):
    """Readings for each racer (second 1..n with the given cadences at resistance 50), merged into the live item."""
    readings = []
    for racer_id, (name, cadences) in riders.items():
        for second, cadence in enumerate(cadences, start=1):
            last = second == len(cadences)
            readings.append(
                make_reading(
                    event="final" if last and racer_id in finished else "update",
                    device_ts=1_764_000_000_000 + second * 1000,
                    second=second,
                    race_id=race.pk,
                    name=name,
                    racer_id=racer_id,
                    class_id=race.race_class_id,
                    cadence=cadence,
                    resistance=50,
                )
            )
    state = fold_readings(new_state(), readings)
    table.merge_live(race.pk, race.race_class_id, state["races"][str(race.pk)]["r"])
    return table.live_standings(race.pk)


@pytest.fixture
def sprint():
    return RaceClass.objects.create(name="Sprint", description="Flat out.", display_order=1)


def live_data_of(response) -> dict:
    """The data a page hands its JavaScript (json_script ``live-data``)."""
    html = response.content.decode()
    text = html.split('<script id="live-data" type="application/json">')[1].split("</script>")[0]
    return json.loads(text)


def make_race(race_class: RaceClass, *, start_offset: timedelta, minutes: int = 5) -> Race:
    now = timezone.now().replace(microsecond=0)
    starts_at = now + start_offset
    race = Race(race_class=race_class, starts_at=starts_at, ends_at=starts_at + timedelta(minutes=minutes))
    race.status = race.state_at(now)
    race.save()
    return race


class TestHomePage:
    def test_lists_classes_with_current_race_and_countdown(self, client, sprint, django_assert_num_queries):
        hill = RaceClass.objects.create(name="Hill Climb", display_order=2)
        RaceClass.objects.create(name="Hidden", display_order=3, enabled=False)
        current = make_race(sprint, start_offset=-timedelta(minutes=2))
        upcoming = make_race(sprint, start_offset=timedelta(minutes=3))
        with django_assert_num_queries(2):
            response = client.get(reverse("pages:home"))
        assert response.status_code == 200
        html = response.content.decode()
        assert html.index("Sprint") < html.index("Hill Climb")
        assert "Hidden" not in html
        assert f'href="/races/{current.pk}/"' in html
        assert f'datetime="{current.ends_at.isoformat()}"' in html
        assert ">2:5" in html or ">3:00<" in html  # about three minutes left, rendered server-side
        assert upcoming.starts_at.strftime("%H:%M") in html
        assert f'href="/classes/{sprint.pk}/"' in html and f'href="/classes/{hill.pk}/"' in html
        assert "No race now" in html  # Hill Climb has no race
        assert "countdown.js" in html

    def test_query_count_does_not_grow_with_classes(self, client, django_assert_num_queries):
        for order in range(6):
            race_class = RaceClass.objects.create(name=f"Class {order}", display_order=order)
            make_race(race_class, start_offset=-timedelta(minutes=1))
            make_race(race_class, start_offset=timedelta(minutes=4))
        with django_assert_num_queries(2):
            response = client.get("/")
        assert response.content.decode().count("Here now") == 6


class TestClassLivePage:
    def test_first_paint_has_live_rows_ranked(self, client, sprint, table):
        race = make_race(sprint, start_offset=-timedelta(minutes=1))
        seed_live(table, race, {7: ("Ada Pedal", [90, 95, 100]), 3: ("Bo Spoke", [120, 120]), 9: ("Cleo", [10])})
        response = client.get(f"/classes/{sprint.pk}/")
        assert response.status_code == 200
        html = response.content.decode()
        data = live_data_of(response)
        assert data["snapshot"]["race_id"] == race.pk and data["snapshot"]["race"]["id"] == race.pk
        assert data["ws_path"] == f"/ws/classes/{sprint.pk}/"
        assert data["all_time_url"] == f"/api/classes/{sprint.pk}/all-time/"
        assert [row["racer_id"] for row in data["snapshot"]["rows"]] == [7, 3, 9]
        assert data["snapshot"]["total"] == 3
        # Ada: 3 seconds of (125*115/100, 130*115/100, 135*115/100) > Bo: 2 * 155*115/100 > Cleo
        assert html.index("Ada Pedal") < html.index("Bo Spoke") < html.index("Cleo")
        assert '<span id="total">3</span>' in html
        assert '<label for="view-all-time">All time</label>' in html and 'id="all-time-board"' in html
        assert '<th scope="col" class="num">Rank</th>' in html

    def test_own_row_highlighted(self, client, sprint, table):
        race = make_race(sprint, start_offset=-timedelta(minutes=1))
        seed_live(table, race, {7: ("Ada Pedal", [90]), 3: ("Bo Spoke", [80])})
        html = client.get(f"/classes/{sprint.pk}/?racer=3").content.decode()
        assert 'data-racer-id="3" class="own" aria-current="true"' in html
        assert 'data-racer-id="3"' in html.split('id="standings"')[1]

    def test_logged_in_racer_is_the_default_own_row(self, client, sprint, table):
        user = get_user_model().objects.create_user("rider", password="pw-for-tests")
        Racer.objects.create(racer_id=7, name="Ada Pedal", user=user)
        race = make_race(sprint, start_offset=-timedelta(minutes=1))
        seed_live(table, race, {7: ("Ada Pedal", [90])})
        client.force_login(user)
        response = client.get(f"/classes/{sprint.pk}/")
        html = response.content.decode()
        assert live_data_of(response)["racer_id"] == 7
        assert 'class="own"' in html

    def test_no_current_race_shows_next_start(self, client, sprint):
        upcoming = make_race(sprint, start_offset=timedelta(minutes=2))
        response = client.get(f"/classes/{sprint.pk}/")
        assert response.status_code == 200
        html = response.content.decode()
        assert "No race running" in html
        assert f'Next race starts at <time datetime="{upcoming.starts_at.isoformat()}"' in html

    def test_unknown_class_is_404(self, client):
        assert client.get("/classes/999/").status_code == 404

    def test_store_down_is_a_friendly_message_not_a_500(self, client, sprint, store_down):
        make_race(sprint, start_offset=-timedelta(minutes=1))
        response = client.get(f"/classes/{sprint.pk}/")
        assert response.status_code == 200  # the page still works: it updates live once the store is back
        assert "Results are unavailable right now" in response.content.decode()


class TestRaceResultsPage:
    def test_results_by_score_with_dnf_after_the_race(self, client, sprint, table):
        race = make_race(sprint, start_offset=-timedelta(minutes=10))
        seed_live(
            table, race, {1: ("Ada", [100, 100]), 2: ("Bo", [150, 150]), 3: ("Cleo", [200, 200, 200])}, finished={1, 2}
        )
        table.put_final_results(
            [
                FinalResult(race.pk, sprint.pk, 1, "Ada", 310.5, 2, 1),
                FinalResult(race.pk, sprint.pk, 2, "Bo", 425.5, 2, 2),
            ]
        )
        response = client.get(f"/races/{race.pk}/")
        assert response.status_code == 200
        html = response.content.decode()
        assert "<caption>Final results of race #" in html
        assert html.index(">Bo<") < html.index(">Ada<") < html.index(">Cleo<")
        assert '<abbr title="did not finish">DNF</abbr>' in html
        assert 'class="dnf"' in html and 'data-racer-id="3" class="dnf"' in html

    def test_running_race_links_to_live_page_and_shows_no_dnf(self, client, sprint, table):
        race = make_race(sprint, start_offset=-timedelta(minutes=1))
        seed_live(table, race, {1: ("Ada", [100])})
        html = client.get(f"/races/{race.pk}/").content.decode()
        assert "This race is running" in html and f'href="/classes/{sprint.pk}/"' in html
        assert "DNF" not in html
        assert "No results yet." in html

    def test_pagination_with_cursor(self, client, sprint, table):
        race = make_race(sprint, start_offset=-timedelta(minutes=10))
        table.put_final_results(
            [FinalResult(race.pk, sprint.pk, i, f"Racer {i}", 1000.0 - i, 300, i) for i in range(1, 131)]
        )
        first = client.get(f"/races/{race.pk}/").content.decode()
        assert first.count("<tr data-racer-id=") == 100
        assert 'rel="next"' in first
        next_href = first.split('rel="next" href="')[1].split('"')[0].replace("&amp;", "&")
        second = client.get(f"/races/{race.pk}/{next_href}").content.decode()
        assert second.count("<tr data-racer-id=") == 30
        assert '<td class="num">101</td>' in second and ">Racer 101<" in second
        assert 'rel="next"' not in second

    def test_forged_cursor_is_400_page(self, client, sprint, table):
        race = make_race(sprint, start_offset=-timedelta(minutes=10))
        response = client.get(f"/races/{race.pk}/?cursor=Zm9yZ2Vk")
        assert response.status_code == 400
        assert "not valid any more" in response.content.decode()

    def test_unknown_race_is_404(self, client):
        assert client.get("/races/12345/").status_code == 404

    def test_store_down_is_503_page(self, client, sprint, store_down):
        race = make_race(sprint, start_offset=-timedelta(minutes=10))
        response = client.get(f"/races/{race.pk}/")
        assert response.status_code == 503
        assert response["Retry-After"] == "30"
        assert "Results are unavailable right now" in response.content.decode()


class TestClassLeaderboardPage:
    def test_bests_in_order(self, client, sprint, table):
        table.put_personal_bests(
            [
                PersonalBest(sprint.pk, 1, "Ada", 500.0, 11),
                PersonalBest(sprint.pk, 2, "Bo", 700.0, 12),
                PersonalBest(sprint.pk + 1, 3, "Other class", 900.0, 13),
            ]
        )
        response = client.get(f"/classes/{sprint.pk}/leaderboard/")
        assert response.status_code == 200
        html = response.content.decode()
        assert html.index(">Bo<") < html.index(">Ada<")
        assert "Other class" not in html
        assert 'href="/races/12/"' in html

    def test_store_down(self, client, sprint, store_down):
        assert client.get(f"/classes/{sprint.pk}/leaderboard/").status_code == 503


class TestRacerPage:
    def test_chart_of_scores_and_seconds(self, client, sprint, table):
        Racer.objects.create(racer_id=5, name="Eli Crank")
        for race_id, score in ((21, 400.0), (22, 450.0), (23, 430.0)):
            table.put_final_results([FinalResult(race_id, sprint.pk, 5, "Eli Crank", score, 300, race_id)])
        table.put_personal_bests([PersonalBest(sprint.pk, 5, "Eli Crank", 450.0, 22)])
        table.put_racer_race_seconds(23, 5, {1: 100.0, 2: 110.5, 4: 90.0}, source="test")
        table.put_racer_race_seconds(21, 5, {1: 50.0}, source="test")
        response = client.get("/racers/5/")
        assert response.status_code == 200
        html = response.content.decode()
        assert "Eli Crank" in html
        bests = html.split('id="racer-bests"')[1].split("</table>")[0]
        assert ">Sprint</a>" in bests and "450.0" in bests and 'href="/races/22/"' in bests
        assert html.count('<svg class="chart"') == 2
        assert '<title id="score-chart-title">Score per race</title>' in html
        # newest race chosen by default; second 3 is missing so the line has two segments
        assert "Output per second in race #23" in html
        assert html.count('<polyline class="line"') == 1 + 2
        assert "3 seconds ridden" in html
        assert '<label for="race-select">Race</label>' in html
        chosen = client.get("/racers/5/?race=21").content.decode()
        assert "Output per second in race #21" in chosen and "1 seconds ridden" in chosen

    def test_unknown_racer_is_404(self, client, table):
        assert client.get("/racers/404/").status_code == 404

    def test_registered_racer_without_races(self, client, table):
        Racer.objects.create(racer_id=6, name="Fay Chain")
        html = client.get("/racers/6/").content.decode()
        assert "Fay Chain" in html and "No finished races yet." in html


class TestRidePage:
    def test_login_required(self, client):
        response = client.get("/ride/")
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/?next=/ride/")

    def test_login_page_logs_in_and_returns_to_ride(self, client):
        get_user_model().objects.create_user("rider", password="pw-for-tests")
        page = client.get("/accounts/login/?next=/ride/")
        assert page.status_code == 200 and '<label for="id_username">Username</label>' in page.content.decode()
        response = client.post("/accounts/login/", {"username": "rider", "password": "pw-for-tests", "next": "/ride/"})
        assert response.status_code == 302 and response["Location"] == "/ride/"

    def test_racer_sees_controls_for_chosen_class(self, client, sprint, table):
        hill = RaceClass.objects.create(name="Hill Climb", display_order=2)
        user = get_user_model().objects.create_user("rider", password="pw-for-tests")
        Racer.objects.create(racer_id=1, name="Ada Pedal", user=user)
        make_race(hill, start_offset=-timedelta(minutes=1))
        client.force_login(user)
        response = client.get(f"/ride/?class={hill.pk}")
        html = response.content.decode()
        assert 'data-racer-id="1"' in html and 'data-ws-path="/ws/ride/"' in html
        assert '<label for="cadence">' in html and '<label for="resistance">' in html
        assert f'<option value="{hill.pk}" selected>Hill Climb</option>' in html
        assert "Sprint (no race now)" in html
        data = live_data_of(response)
        assert data["ws_path"] == f"/ws/classes/{hill.pk}/" and data["racer_id"] == 1
        assert data["ride"] == {"racer_id": 1, "best_score": None, "summary_url": "/api/racers/1/races/"}
        assert "ride.js" in html

    def test_user_without_racer_is_told_so(self, client, sprint):
        user = get_user_model().objects.create_user("viewer", password="pw-for-tests")
        client.force_login(user)
        html = client.get("/ride/").content.decode()
        assert "not linked to a racer" in html and "ride.js" not in html


class TestPageQueryCounts:
    """SQL queries per page stay fixed, whatever the number of rows (results come from DynamoDB)."""

    def test_class_live(self, client, sprint, table, django_assert_num_queries):
        race = make_race(sprint, start_offset=-timedelta(minutes=1))
        seed_live(table, race, {i: (f"Racer {i}", [80 + i]) for i in range(1, 30)})
        with django_assert_num_queries(3):  # the class, its current race, its past races
            response = client.get(f"/classes/{sprint.pk}/?racer=3")
        assert response.content.decode().count("<tr data-racer-id=") == 29

    def test_race_results(self, client, sprint, table, django_assert_num_queries):
        race = make_race(sprint, start_offset=-timedelta(minutes=10))
        table.put_final_results([FinalResult(race.pk, sprint.pk, i, f"R{i}", 100.0 + i, 300, i) for i in range(1, 40)])
        with django_assert_num_queries(3):  # the race, the previous and the next race of the class
            client.get(f"/races/{race.pk}/")

    def test_racer(self, client, sprint, table, django_assert_num_queries):
        Racer.objects.create(racer_id=5, name="Eli Crank")
        table.put_final_results([FinalResult(r, sprint.pk, 5, "Eli Crank", 400.0 + r, 300, r) for r in range(1, 20)])
        with django_assert_num_queries(4):  # the racer, the classes (bests), the class names, the latest race
            response = client.get("/racers/5/")
        assert response.content.decode().count('class="dot"') == 19


class TestPageEdges:
    @pytest.mark.parametrize(
        "path", ["/races/99999999999999999999/", "/classes/9007199254740992/", "/racers/%C2%B2/", "/nowhere/"]
    )
    def test_out_of_range_ids_are_the_404_page(self, client, path):
        response = client.get(path)
        assert response.status_code == 404
        assert response["Content-Type"].startswith("text/html")

    @pytest.mark.parametrize("query", ["racer=%C2%B2", "racer=99999999999999999999", "racer=-3"])
    def test_odd_query_ids_are_ignored(self, client, sprint, query):
        assert client.get(f"/classes/{sprint.pk}/?{query}").status_code == 200
