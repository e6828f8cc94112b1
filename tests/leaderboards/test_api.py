"""REST API against a real moto server, seeded through the processors' write functions."""

from __future__ import annotations

import gzip
from datetime import timedelta

import orjson
import pytest
from django.utils import timezone

from leaderboards import integrations
from processors import clients
from races.models import Race, RaceClass, Racer
from tests.leaderboards.conftest import seed_finals, seed_history, seed_live, settle

pytestmark = pytest.mark.django_db


def _clear_clients():
    integrations.clients_clear()
    clients.clear()


def _get(client, url, **headers):
    return client.get(url, headers=headers)


def _all_pages(client, url):
    rows, pages = [], 0
    while url:
        response = client.get(url)
        assert response.status_code == 200, response.content
        body = response.json()
        rows.extend(body["results"])
        url = body["next"]
        pages += 1
    return rows, pages


# --- races (SQL) -------------------------------------------------------------------------


class TestRaceListApi:
    def test_newest_first_paginated_by_cursor_one_query_per_page(
        self, client, make_race, race_class, django_assert_num_queries
    ):
        races = [make_race(start_minutes=-5 * i) for i in range(7)]
        with django_assert_num_queries(1):
            first = client.get("/api/races/?limit=3").json()
        assert [r["id"] for r in first["results"]] == [r.pk for r in races[:3]]
        assert first["results"][0]["class_name"] == "Sprint"
        rows, pages = _all_pages(client, "/api/races/?limit=3")
        assert [r["id"] for r in rows] == [r.pk for r in races]
        assert pages == 3

    def test_filters_by_class_status_and_time(self, client, make_race, race_class):
        other = RaceClass.objects.create(name="Hill Climb", display_order=2)
        past = make_race(start_minutes=-20)
        running = make_race(start_minutes=-2, status=Race.Status.SCHEDULED)  # stale status: the clock wins
        future = make_race(start_minutes=30)
        elsewhere = make_race(start_minutes=-2, race_class=other)

        def ids(query):
            response = client.get(f"/api/races/?{query}")
            assert response.status_code == 200, response.content
            return [r["id"] for r in response.json()["results"]]

        assert ids(f"class={race_class.pk}") == [future.pk, running.pk, past.pk]
        assert ids(f"class={race_class.pk}&status=active") == [running.pk]
        assert ids("status=scheduled") == [future.pk]
        assert ids("status=finished") == [past.pk]
        since = (timezone.now() - timedelta(minutes=5)).isoformat().replace("+00:00", "Z")
        until = (timezone.now() + timedelta(minutes=5)).isoformat().replace("+00:00", "Z")
        assert set(ids(f"since={since}&until={until}")) == {running.pk, elsewhere.pk}
        assert client.get(f"/api/races/{running.pk}/").json()["status"] == "active"

    @pytest.mark.parametrize(
        "query", ["status=bogus", "class=x", "limit=0", "limit=201", "since=yesterday", "cursor=forged"]
    )
    def test_bad_parameters_are_a_json_400(self, client, make_race, query):
        make_race()
        response = client.get(f"/api/races/?{query}")
        assert response.status_code == 400
        assert response.json()["error"]["code"] in ("invalid", "invalid_cursor")

    def test_detail_and_unknown_race(self, client, running_race):
        body = client.get(f"/api/races/{running_race.pk}/").json()
        assert body["id"] == running_race.pk and body["status"] == "active"
        assert 0 < body["seconds_remaining"] <= 240
        response = client.get("/api/races/999999/")
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"

    @pytest.mark.parametrize(
        "path",
        ["races/{big}/", "races/{big}/results/", "races/{big}/live/", "classes/{big}/leaderboard/", "racers/{big}/"],
    )
    def test_ids_beyond_any_stored_id_are_a_json_404(self, client, path):
        response = client.get("/api/" + path.format(big=10**30))
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"

    def test_writes_are_refused_to_anonymous_clients(self, client):
        response = client.post("/api/races/", {"class": 1})
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "not_authenticated"


# --- results (A2 + DNF) ------------------------------------------------------------------


class TestRaceResultsApi:
    def test_score_desc_ties_by_racer_id_and_ranks_continue_across_pages(
        self, client, table, finished_race, django_assert_num_queries
    ):
        scores = {racer_id: float(1000 - racer_id // 2) for racer_id in range(1, 251)}  # pairs tie
        seed_finals(table, finished_race, scores)
        with django_assert_num_queries(1):  # the race
            assert client.get(f"/api/races/{finished_race.pk}/results/?limit=100").status_code == 200
        rows, pages = _all_pages(client, f"/api/races/{finished_race.pk}/results/?limit=100")
        assert pages == 3
        assert [r["rank"] for r in rows] == list(range(1, 251))
        expected = sorted(scores, key=lambda racer_id: (-scores[racer_id], racer_id))
        assert [r["racer_id"] for r in rows] == expected
        assert rows[0] == {
            "rank": 1,
            "racer_id": 1,
            "name": "Racer 1",
            "score": 1000.0,
            "second": 300,
            "status": "finished",
            "finished_at": 1_764_172_800_001,
        }

    def test_dnf_rows_follow_finals_once_the_race_has_ended(self, client, table, finished_race):
        seed_live(
            table,
            finished_race,
            {
                1: ("Fin One", {1: 10.0, 2: 10.0}, 1_764_172_800_500),
                2: ("Quit Two", {1: 50.0}, None),
                3: ("Quit Three", {1: 5.0, 2: 5.0, 3: 5.0}, None),
                4: ("Fin Four", {1: 1.0}, 1_764_172_800_600),
            },
        )
        seed_finals(table, finished_race, {1: 20.0, 4: 1.0})
        body = client.get(f"/api/races/{finished_race.pk}/results/?limit=3").json()
        assert [(r["rank"], r["racer_id"], r["status"]) for r in body["results"]] == [
            (1, 1, "finished"),
            (2, 4, "finished"),
            (None, 2, "dnf"),
        ]
        assert body["results"][2]["score"] == 50.0 and body["results"][2]["name"] == "Quit Two"
        second = client.get(body["next"]).json()
        assert [(r["rank"], r["racer_id"], r["status"], r["score"]) for r in second["results"]] == [
            (None, 3, "dnf", 15.0)
        ]
        assert second["next"] is None

    def test_no_dnf_rows_while_the_race_runs(self, client, table, running_race):
        seed_live(table, running_race, {1: ("A", {1: 10.0}, 1_764_172_800_500), 2: ("B", {1: 50.0}, None)})
        seed_finals(table, running_race, {1: 10.0})
        body = client.get(f"/api/races/{running_race.pk}/results/").json()
        assert [r["racer_id"] for r in body["results"]] == [1]
        assert body["next"] is None

    def test_ended_but_unsettled_results_are_not_immutable(self, client, table, finished_race):
        # ended five minutes ago, but the pipeline has not settled it: results may still change
        seed_finals(table, finished_race, {1: 10.0, 2: 20.0})
        from races.integrations import race_identity_of

        table.put_race_identity(race_identity_of(finished_race))
        response = client.get(f"/api/races/{finished_race.pk}/results/")
        assert response.status_code == 200 and response["Cache-Control"] == "no-cache"
        settle(table, finished_race)
        response = client.get(f"/api/races/{finished_race.pk}/results/")
        assert "immutable" in response["Cache-Control"]

    def test_settled_results_carry_a_strong_etag_and_answer_304(self, client, table, finished_race):
        seed_finals(table, finished_race, {1: 10.0, 2: 20.0})
        settle(table, finished_race)
        url = f"/api/races/{finished_race.pk}/results/"
        response = client.get(url)
        etag = response["ETag"]
        assert etag.startswith('"') and not etag.startswith("W/")
        assert "max-age=31536000" in response["Cache-Control"] and "immutable" in response["Cache-Control"]
        again = _get(client, url, if_none_match=etag)
        assert again.status_code == 304
        assert again.content == b""
        assert again["ETag"] == etag
        changed = _get(client, f"{url}?limit=1", if_none_match=etag)
        assert changed.status_code == 200 and changed["ETag"] != etag

    def test_settled_pages_are_read_from_dynamodb_once(self, client, table, finished_race, running_race, monkeypatch):
        seed_finals(table, finished_race, {1: 10.0, 2: 20.0})
        seed_finals(table, running_race, {1: 10.0})
        settle(table, finished_race)
        settled = client.get(f"/api/races/{finished_race.pk}/results/?limit=1")
        assert client.get(f"/api/races/{running_race.pk}/results/").status_code == 200
        monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # DynamoDB gone from here on
        _clear_clients()
        again = client.get(f"/api/races/{finished_race.pk}/results/?limit=1")
        assert again.status_code == 200 and again.json() == settled.json()
        assert client.get(f"/api/races/{running_race.pk}/results/").status_code == 503

    def test_running_race_results_must_be_revalidated(self, client, table, running_race):
        seed_finals(table, running_race, {1: 10.0})
        response = client.get(f"/api/races/{running_race.pk}/results/")
        assert response["Cache-Control"] == "no-cache"

    def test_forged_or_foreign_cursors_are_a_400(self, client, table, finished_race, make_race):
        other = make_race(start_minutes=-30)
        seed_finals(table, finished_race, {i: float(i) for i in range(1, 6)})
        seed_finals(table, other, {i: float(i) for i in range(1, 6)})
        cursor = client.get(f"/api/races/{finished_race.pk}/results/?limit=2").json()["next_cursor"]
        for url in (
            f"/api/races/{other.pk}/results/?limit=2&cursor={cursor}",  # another race's list
            f"/api/races/{finished_race.pk}/results/?limit=2&cursor={cursor[:-2]}xx",  # tampered
            f"/api/races/{finished_race.pk}/results/?cursor=not-a-cursor",
        ):
            response = client.get(url)
            assert response.status_code == 400, url
            assert response.json()["error"]["code"] == "invalid_cursor"

    def test_bad_limit_and_unknown_race(self, client, table, finished_race):
        assert client.get(f"/api/races/{finished_race.pk}/results/?limit=0").status_code == 400
        assert client.get(f"/api/races/{finished_race.pk}/results/?limit=1001").status_code == 400
        response = client.get("/api/races/424242/results/")
        assert response.status_code == 404
        assert response["Content-Type"] == "application/json"


# --- live (A1) ---------------------------------------------------------------------------


class TestRaceLiveApi:
    def test_snapshot_ranked_bounded_with_own_row(self, client, table, running_race, django_assert_num_queries):
        seed_live(table, running_race, {i: (f"R{i}", {1: float(i)}, None) for i in range(1, 21)})
        with django_assert_num_queries(1):  # the race
            body = client.get(f"/api/races/{running_race.pk}/live/?limit=5&racer=3").json()
        assert body["total"] == 20 and body["version"] == 1
        assert [r["racer_id"] for r in body["rows"]] == [20, 19, 18, 17, 16]
        assert [r["rank"] for r in body["rows"]] == [1, 2, 3, 4, 5]
        assert body["racer"] == {
            "rank": 18,
            "racer_id": 3,
            "name": "R3",
            "score": 3.0,
            "second": 1,
            "output": 3.0,
            "finished": False,
        }

    def test_empty_before_any_reading(self, client, table, running_race):
        body = client.get(f"/api/races/{running_race.pk}/live/").json()
        assert body["total"] == 0 and body["rows"] == [] and body["racer"] is None and body["version"] == 0


# --- class leaderboard (A3) --------------------------------------------------------------


class TestClassLeaderboardApi:
    def test_all_time_bests_ranked_across_pages(
        self, client, table, finished_race, make_race, race_class, django_assert_num_queries
    ):
        later = make_race(start_minutes=-30)
        seed_finals(table, finished_race, {1: 10.0, 2: 30.0, 3: 20.0})
        seed_finals(table, later, {1: 40.0, 2: 5.0})  # racer 1 improves, racer 2 does not
        with django_assert_num_queries(1):  # the class exists
            assert client.get(f"/api/classes/{race_class.pk}/leaderboard/?limit=2").status_code == 200
        rows, pages = _all_pages(client, f"/api/classes/{race_class.pk}/leaderboard/?limit=2")
        assert pages == 2
        assert [(r["rank"], r["racer_id"], r["score"], r["race_id"]) for r in rows] == [
            (1, 1, 40.0, later.pk),
            (2, 2, 30.0, finished_race.pk),
            (3, 3, 20.0, finished_race.pk),
        ]

    def test_unknown_class_and_forged_cursor(self, client, table, race_class):
        assert client.get("/api/classes/9999/leaderboard/").status_code == 404
        response = client.get(f"/api/classes/{race_class.pk}/leaderboard/?cursor=abc.def")
        assert response.status_code == 400


# --- history (S3) ------------------------------------------------------------------------


class TestClassHistoryApi:
    def test_gzip_passed_through_or_decompressed_with_etag(self, client, history_bucket, race_class):
        document = seed_history(history_bucket, race_class.pk, {17: {1: 101.2, 3: 99.0}, 5: {2: 80.5}})
        url = f"/api/classes/{race_class.pk}/history/"

        zipped = _get(client, url, accept_encoding="gzip, deflate")
        assert zipped.status_code == 200
        assert zipped["Content-Encoding"] == "gzip"
        raw = b"".join(zipped.streaming_content)
        assert orjson.loads(gzip.decompress(raw)) == document
        assert document["racers"]["17"] == [101.2, None, 99.0]

        plain = _get(client, url)
        assert not plain.has_header("Content-Encoding")
        assert orjson.loads(b"".join(plain.streaming_content)) == document
        assert "Accept-Encoding" in plain["Vary"]
        assert plain["ETag"] != zipped["ETag"]

        assert _get(client, url, accept_encoding="gzip", if_none_match=zipped["ETag"]).status_code == 304
        assert _get(client, url, if_none_match=plain["ETag"]).status_code == 304
        seed_history(history_bucket, race_class.pk, {17: {2: 150.0}})
        assert _get(client, url, accept_encoding="gzip", if_none_match=zipped["ETag"]).status_code == 200

    def test_empty_document_before_any_history_and_404_for_unknown_class(self, client, history_bucket, race_class):
        body = client.get(f"/api/classes/{race_class.pk}/history/").json()
        assert body == {"classId": race_class.pk, "updatedAt": None, "racers": {}}
        assert client.get("/api/classes/777/history/").status_code == 404


# --- racers (SQL + A4/A5) ----------------------------------------------------------------


class TestRacerApis:
    def test_registered_racer_with_personal_bests(
        self, client, table, racer, finished_race, race_class, django_assert_num_queries
    ):
        RaceClass.objects.create(name="Empty class", display_order=5)
        seed_finals(table, finished_race, {racer.pk: 123.4567}, names={racer.pk: racer.name})
        with django_assert_num_queries(2):  # the racer, the classes
            body = client.get(f"/api/racers/{racer.pk}/").json()
        assert body == {
            "id": racer.pk,
            "name": "Ada Pedal",
            "registered": True,
            "personal_bests": [
                {"class_id": race_class.pk, "class_name": "Sprint", "score": 123.4567, "race_id": finished_race.pk}
            ],
        }

    def test_racer_known_only_from_results_and_unknown_racer(self, client, table, finished_race):
        seed_finals(table, finished_race, {555: 10.0}, names={555: "Sim Bot"})
        body = client.get("/api/racers/555/").json()
        assert body["name"] == "Sim Bot" and body["registered"] is False
        assert client.get("/api/racers/556/").status_code == 404
        assert client.get("/api/racers/556/results/").status_code == 404

    def test_results_newest_first_paginated_two_queries(
        self, client, table, racer, make_race, race_class, django_assert_num_queries
    ):
        races = [make_race(start_minutes=-10 * (i + 1)) for i in range(5)]
        for index, race in enumerate(races):
            seed_finals(table, race, {racer.pk: 10.0 + index})
        newest_first = sorted(races, key=lambda race: -race.pk)
        with django_assert_num_queries(1):  # class names of the page
            first = client.get(f"/api/racers/{racer.pk}/results/?limit=2").json()
        assert [r["race_id"] for r in first["results"]] == [r.pk for r in newest_first[:2]]
        assert first["results"][0]["class_name"] == "Sprint"
        rows, pages = _all_pages(client, f"/api/racers/{racer.pk}/results/?limit=2")
        assert [r["race_id"] for r in rows] == [r.pk for r in newest_first] and pages == 3

    def test_registered_racer_without_results_has_an_empty_list(self, client, table, racer):
        body = client.get(f"/api/racers/{racer.pk}/results/").json()
        assert body == {"results": [], "next_cursor": None, "next": None}
        assert Racer.objects.count() == 1


# --- the stores unreachable --------------------------------------------------------------


class TestStoreUnavailable:
    @pytest.mark.parametrize("path", ["results/", "live/"])
    def test_dynamodb_unreachable_is_a_503_with_retry_after(self, client, unreachable_aws, finished_race, path):
        response = client.get(f"/api/races/{finished_race.pk}/{path}")
        assert response.status_code == 503
        assert int(response["Retry-After"]) > 0
        assert response.json()["error"]["code"] == "service_unavailable"

    def test_leaderboard_and_racer_unreachable(self, client, unreachable_aws, race_class, racer):
        assert client.get(f"/api/classes/{race_class.pk}/leaderboard/").status_code == 503
        assert client.get(f"/api/racers/{racer.pk}/results/").status_code == 503

    def test_s3_unreachable_is_a_503(self, client, unreachable_aws, race_class):
        response = client.get(f"/api/classes/{race_class.pk}/history/")
        assert response.status_code == 503
        assert response.has_header("Retry-After")


# --- schema ------------------------------------------------------------------------------


def test_schema_is_valid_openapi_3_and_describes_every_endpoint(client):
    from openapi_spec_validator import validate

    response = client.get("/api/schema/", headers={"accept": "application/vnd.oai.openapi+json"})
    assert response.status_code == 200
    schema = orjson.loads(response.content)
    validate(schema)
    assert schema["openapi"].startswith("3.")
    paths = schema["paths"]
    expected = {
        "/api/races/": {"200", "400", "429"},
        "/api/races/{race_id}/": {"200", "404"},
        "/api/races/{race_id}/results/": {"200", "304", "400", "404", "503"},
        "/api/races/{race_id}/live/": {"200", "400", "404", "503"},
        "/api/classes/{class_id}/leaderboard/": {"200", "400", "404", "503"},
        "/api/classes/{class_id}/history/": {"200", "304", "404", "503"},
        "/api/racers/{racer_id}/": {"200", "404", "503"},
        "/api/racers/{racer_id}/results/": {"200", "400", "404", "503"},
    }
    for path, codes in expected.items():
        operation = paths[path]["get"]
        assert codes <= set(operation["responses"]), path
        assert operation.get("summary"), path
    race_list_params = {p["name"] for p in paths["/api/races/"]["get"]["parameters"]}
    assert {"class", "status", "since", "until", "limit", "cursor"} <= race_list_params
    assert client.get("/api/docs/").status_code == 200


def test_result_rows_are_what_the_output_serializer_gives():
    from leaderboards.apis import RaceResultsApi, ResultRows
    from leaderboards.selectors import STATUS_DNF, STATUS_FINISHED, ResultRow

    rows = [
        ResultRow(1, 7, "Racer 7", 1234.5678, 300, STATUS_FINISHED, 1_764_172_800_001),
        ResultRow(2, 2**53 - 1, "Zoë ✓", 1000.0, 12, STATUS_FINISHED, 0),
        ResultRow(None, 3, "Quit", 50.25, 1, STATUS_DNF, None),
    ]
    fast = ResultRows(rows, many=True).data
    assert fast == RaceResultsApi.OutputSerializer(rows, many=True).data
    assert orjson.dumps(fast) == orjson.dumps(RaceResultsApi.OutputSerializer(rows, many=True).data)


# --- edges: unknown paths, out-of-range ids ------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/api/races/null,null/",
        "/api/nothing-here/",
        "/api/races/1/nope/",
        "/api/races/-1/",
        "/api/races/99999999999999999999/",
        "/api/classes/9007199254740992/current-race/",  # MAX_ID + 1
        "/api/racers/%C2%B2/",
        "/api/",
    ],
)
def test_unknown_paths_under_api_are_a_json_404(client, path, settings):
    for debug in (False, True):  # in DEBUG mode too (make run), where Django would show its technical 404 page
        settings.DEBUG = debug
        response = client.get(path)
        assert response.status_code == 404, (path, debug)
        assert response["Content-Type"] == "application/json"
        assert response.json()["error"]["code"] == "not_found"
        assert len(response.content) < 200


def test_a_missing_slash_still_redirects(client):
    response = client.get("/api/races?limit=2")
    assert response.status_code == 301 and response["Location"] == "/api/races/?limit=2"
    assert client.get("/api/races/nope").status_code == 404


@pytest.mark.parametrize(
    "query",
    [
        "class=12345678901234567890",
        "class=9007199254740992",
        "class=-1",
        "class=%C2%B2",
        "class=1e3",
        "limit=99999999999999999999",
        "since=99999-01-01",
        "cursor=" + "x" * 1025,
    ],
)
def test_out_of_range_query_parameters_are_a_json_400(client, db, query):
    response = client.get(f"/api/races/?{query}")
    assert response.status_code == 400, (query, response.content[:200])
    assert response.json()["error"]["code"] == "invalid"


@pytest.mark.parametrize(
    "url",
    [
        "/api/races/{race}/live/?racer=12345678901234567890",
        "/api/races/{race}/live/?limit=99999999999999999999",
        "/api/races/{race}/results/?limit=1001&cursor=" + "x" * 5000,
        "/api/racers/3/results/?cursor=" + "y" * 5000,
        "/api/classes/{klass}/leaderboard/?cursor=" + "z" * 1025,
    ],
)
def test_out_of_range_parameters_of_each_list_are_a_json_400(client, running_race, url):
    response = client.get(url.format(race=running_race.pk, klass=running_race.race_class_id))
    assert response.status_code == 400, (url[:80], response.content[:200])
    assert response.json()["error"]["code"] == "invalid"


def test_largest_id_is_served(client, db):
    assert client.get(f"/api/races/{2**53 - 1}/").status_code == 404
    assert client.get(f"/api/races/?class={2**53 - 1}").status_code == 200


def test_issued_cursors_stay_far_below_the_accepted_length():
    # The longest state a cursor carries: a LastEvaluatedKey with the largest ids, and a large rank offset.
    from leaderboards.selectors import MAX_CURSOR_LENGTH, _sign

    big = 2**53 - 1
    key = {
        "pk": {"S": f"RACE#{big}"},
        "sk": {"S": f"RESULT#{big}"},
        "gsi1pk": {"S": f"RACE#{big}#RESULTS"},
        "gsi1sk": {"S": f"0000000141075.0000#{big}"},
    }
    assert len(_sign(f"results.{big}", {"p": "f", "k": key, "o": 10**9})) < MAX_CURSOR_LENGTH // 4
