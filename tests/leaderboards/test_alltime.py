"""The "All time" board endpoint: per-second personal bests from the class history object (moto S3),
ranked and bounded, cached per history version."""

from __future__ import annotations

import gzip
from collections.abc import Iterator

import orjson
import pytest

from leaderboards import alltime
from leaderboards.apis import AllTimeSecondSerializer
from races.models import Racer
from tests.leaderboards.conftest import seed_history

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_board_cache() -> Iterator[None]:
    alltime.clear_cache()
    yield
    alltime.clear_cache()


def test_ranks_every_racer_best_per_second_with_names_and_own_series(client, history_bucket, race_class):
    Racer.objects.create(racer_id=17, name="Ada Pedal")
    Racer.objects.create(racer_id=5, name="Bo Spoke")
    seed_history(history_bucket, race_class.pk, {17: {1: 101.2, 3: 99.0}, 5: {1: 120.5, 2: 80.5}, 9: {1: 101.2}})
    response = client.get(f"/api/classes/{race_class.pk}/all-time/?racer=17")
    assert response.status_code == 200
    body = response.json()
    assert body["class_id"] == race_class.pk
    assert body["racer_count"] == 3
    assert body["updated_at"] == 1_764_172_800_000
    first, second, third = body["seconds"]
    # Best desc; the tie at 101.2 goes to the lower racer id.
    assert first == {"second": 1, "count": 3, "stride": 1, "entries": [[1, 5, 120.5], [2, 9, 101.2], [3, 17, 101.2]]}
    assert second["entries"] == [[1, 5, 80.5]]
    assert third["entries"] == [[1, 17, 99.0]]
    assert body["names"] == {"5": "Bo Spoke", "9": "Racer 9", "17": "Ada Pedal"}
    assert body["racer"] == {"racer_id": 17, "bests": [101.2, None, 99.0]}
    assert client.get(f"/api/classes/{race_class.pk}/all-time/").json()["racer"] is None


def test_etag_304_and_rebuilt_when_history_changes(client, history_bucket, race_class):
    seed_history(history_bucket, race_class.pk, {1: {1: 50.0}})
    url = f"/api/classes/{race_class.pk}/all-time/"
    first = client.get(url)
    assert first["Cache-Control"] == "no-cache"
    assert client.get(url, headers={"if-none-match": first["ETag"]}).status_code == 304
    seed_history(history_bucket, race_class.pk, {2: {1: 60.0}})  # a new race wrote bests
    changed = client.get(url, headers={"if-none-match": first["ETag"]})
    assert changed.status_code == 200
    assert changed.json()["seconds"][0]["entries"] == [[1, 2, 60.0], [2, 1, 50.0]]


def test_gzip_when_accepted(client, history_bucket, race_class):
    seed_history(history_bucket, race_class.pk, {k: {s: 100.0 + k for s in range(1, 301)} for k in range(1, 30)})
    url = f"/api/classes/{race_class.pk}/all-time/"
    plain = client.get(url)
    zipped = client.get(url, headers={"accept-encoding": "gzip"})
    assert zipped["Content-Encoding"] == "gzip"
    assert orjson.loads(gzip.decompress(zipped.content)) == plain.json()
    assert len(zipped.content) < len(plain.content) / 3
    assert client.get(url, headers={"accept-encoding": "gzip", "if-none-match": zipped["ETag"]}).status_code == 304


def test_no_history_yet_is_an_empty_board_and_unknown_class_404(client, history_bucket, race_class):
    body = client.get(f"/api/classes/{race_class.pk}/all-time/?racer=3").json()
    assert body["seconds"] == [] and body["racer_count"] == 0
    assert body["racer"] == {"racer_id": 3, "bests": []}
    assert client.get("/api/classes/999/all-time/").status_code == 404
    assert client.get(f"/api/classes/{race_class.pk}/all-time/?racer=x").status_code == 400


def test_s3_unreachable_is_a_503(client, unreachable_aws, race_class):
    response = client.get(f"/api/classes/{race_class.pk}/all-time/")
    assert response.status_code == 503
    assert response.has_header("Retry-After")


def test_large_class_is_bounded_top_rows_exact_then_every_stride_rank():
    # 1,000 racers at second 1: racer i has best 1000 - i (racer 0 first).
    document = {"classId": 1, "updatedAt": 5, "racers": {str(i): [1000.0 - i] for i in range(1000)}}
    board, racers = alltime.board_from_history(document, class_id=1, full_rows=100, top_rows=10)
    (second,) = board.seconds
    assert second.count == 1000
    assert second.stride == 11  # ceil((1000 - 10) / (100 - 10))
    ranks = [entry[0] for entry in second.entries]
    assert ranks[:10] == list(range(1, 11))
    assert ranks[10:12] == [11, 22] and ranks[-1] == 1000
    assert len(second.entries) <= 101
    assert all(entry[2] == 1000.0 - (entry[0] - 1) and entry[1] == entry[0] - 1 for entry in second.entries)
    assert racers[999] == [1.0]
    assert len(board.names) == len(second.entries)


def test_entries_match_the_documented_serializer():
    data = {"second": 1, "count": 1, "stride": 1, "entries": [[1, 5, 120.5]]}
    serializer = AllTimeSecondSerializer(data=data)
    assert serializer.is_valid(), serializer.errors


def test_schema_documents_the_endpoint(client):
    schema = orjson.loads(client.get("/api/schema/", headers={"accept": "application/vnd.oai.openapi+json"}).content)
    operation = schema["paths"]["/api/classes/{class_id}/all-time/"]["get"]
    assert {"200", "304", "400", "404", "503"} <= set(operation["responses"])
    assert "racer" in {parameter["name"] for parameter in operation["parameters"]}
    properties = schema["components"]["schemas"]["AllTimeBoard"]["properties"]
    assert {"class_id", "updated_at", "racer_count", "seconds", "names", "racer"} <= set(properties)
