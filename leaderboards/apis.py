"""Read-only REST API of results, live standings, all-time bests, history and racers (mounted at /api/).

Anonymous reads, throttled (settings); writes are refused to all but staff by the default
permission. Errors are JSON, and the stores' errors are translated in one place
(``alleycat_site.exceptions.api_exception_handler``): a forged cursor is a 400, any failure of
DynamoDB or S3 a 503 with Retry-After. Ids in paths are bounded by the ``<id:...>`` converter,
ids in query strings by their serializer fields (``MAX_ID``): out of range is a 404 / 400, never a 500.
"""

from __future__ import annotations

import hashlib
import logging
import zlib
from collections.abc import Iterator

import orjson
from django.core.cache import cache
from django.http import Http404, HttpResponse, StreamingHttpResponse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.utils.http import parse_etags, quote_etag
from django.views.decorators.gzip import gzip_page
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from processors.domain.message import MAX_ID
from races.models import Race
from races.services import results_version

from . import alltime, integrations, selectors
from .serializers import (
    NOT_MODIFIED,
    RETRY_AFTER,
    PageFilterSerializer,
    error_responses,
    page_envelope,
    paginated,
)

logger = logging.getLogger(__name__)

IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"
HISTORY_CACHE = "public, max-age=30, must-revalidate"
PLAIN_ETAG_SUFFIX = "-identity"
RESULTS_CACHE_SECONDS = 24 * 60 * 60


def _etag(data) -> str:
    return quote_etag(hashlib.sha256(orjson.dumps(data)).hexdigest()[:32])


def _if_none_match(request) -> list[str]:
    """The ETags of the request's If-None-Match, weak ones compared as strong (GET: weak comparison)."""
    header = request.headers.get("If-None-Match")
    return [tag.removeprefix("W/") for tag in parse_etags(header)] if header else []


def _etag_matches(request, etag: str) -> bool:
    wanted = _if_none_match(request)
    return "*" in wanted or etag in wanted


def _conditional(request, data, *, cache_control: str) -> Response:
    """200 with a strong ETag, or 304 when the client's If-None-Match matches it."""
    etag = _etag(data)
    headers = {"ETag": etag, "Cache-Control": cache_control}
    if _etag_matches(request, etag):
        return Response(status=304, headers=headers)
    return Response(data, headers=headers)


def _race_or_404(race_id: int) -> Race:
    race = selectors.race_get(race_id=race_id)
    if race is None:
        raise Http404("No race with this id.")
    return race


@extend_schema_serializer(component_name="Race")
class RaceOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="pk")
    class_id = serializers.IntegerField(source="race_class_id")
    class_name = serializers.CharField(source="race_class.name")
    starts_at = serializers.DateTimeField()
    ends_at = serializers.DateTimeField()
    status = serializers.SerializerMethodField(help_text="scheduled, active, finished or cancelled (by the clock).")

    def get_status(self, race: Race) -> str:
        return race.state_at(self.context.get("now") or timezone.now())


class RaceListApi(APIView):
    class FilterSerializer(serializers.Serializer):
        limit = serializers.IntegerField(min_value=1, max_value=200, default=50, help_text="Races per page, 1–200.")
        cursor = serializers.CharField(
            required=False, max_length=selectors.MAX_CURSOR_LENGTH, help_text="next_cursor of the previous page."
        )
        status = serializers.ChoiceField(choices=Race.Status.choices, required=False, help_text="By the clock.")
        since = serializers.DateTimeField(required=False, help_text="Races starting at or after (ISO 8601).")
        until = serializers.DateTimeField(required=False, help_text="Races starting before (ISO 8601).")

        def get_fields(self):
            # "class" is a Python keyword: add the query parameter by name.
            fields = super().get_fields()
            fields["class"] = serializers.IntegerField(
                min_value=1, max_value=MAX_ID, required=False, help_text="Race class id."
            )
            return fields

        def validate(self, attrs):
            if attrs.get("since") and attrs.get("until") and attrs["since"] >= attrs["until"]:
                raise serializers.ValidationError({"until": "Must be after since."})
            return attrs

    OutputSerializer = RaceOutputSerializer

    @extend_schema(
        operation_id="races_list",
        summary="List races",
        description="Races newest first (start time desc), cursor-paginated. One SQL query per page.",
        parameters=[FilterSerializer],
        responses={200: paginated("RacePage", RaceOutputSerializer), **error_responses(400, 429)},
    )
    def get(self, request):
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        params = filters.validated_data
        now = timezone.now()
        races, next_cursor = selectors.race_list(
            class_id=params.get("class"),
            status=params.get("status"),
            since=params.get("since"),
            until=params.get("until"),
            limit=params["limit"],
            cursor=params.get("cursor"),
            now=now,
        )
        return Response(page_envelope(request, races, next_cursor, self.OutputSerializer, context={"now": now}))


class RaceDetailApi(APIView):
    @extend_schema_serializer(component_name="RaceDetail")
    class OutputSerializer(RaceOutputSerializer):
        seconds_remaining = serializers.SerializerMethodField()

        def get_seconds_remaining(self, race: Race) -> int:
            now = self.context.get("now") or timezone.now()
            return max(0, int((race.ends_at - now).total_seconds()))

    @extend_schema(
        summary="One race",
        responses={200: OutputSerializer, **error_responses(404, 429)},
    )
    def get(self, request, race_id: int):
        race = _race_or_404(race_id)
        return Response(self.OutputSerializer(race, context={"now": timezone.now()}).data)


class RaceResultsApi(APIView):
    class FilterSerializer(PageFilterSerializer):
        pass

    @extend_schema_serializer(component_name="RaceResult")
    class OutputSerializer(serializers.Serializer):
        rank = serializers.IntegerField(allow_null=True, help_text="1-based across pages; null for DNF rows.")
        racer_id = serializers.IntegerField()
        name = serializers.CharField()
        score = serializers.FloatField()
        second = serializers.IntegerField(help_text="The racer's last second.")
        status = serializers.ChoiceField(choices=[selectors.STATUS_FINISHED, selectors.STATUS_DNF])
        finished_at = serializers.IntegerField(
            source="finished_at_ms", allow_null=True, help_text="Device time of the final message, ms since epoch."
        )

    @extend_schema(
        summary="Results of a race",
        description=(
            "Final results by score (desc; ties by racer id asc) with ranks that continue across pages. "
            "Once the race has ended, racers without a final message follow as DNF rows (status dnf, rank null) "
            "with their last known score. Results of a settled race (the pipeline has passed its end plus a grace "
            "and reconciled them) never change: they carry a strong ETag and a one-year Cache-Control, and "
            "If-None-Match gives 304. "
            "Other results carry an ETag with Cache-Control no-cache."
        ),
        parameters=[FilterSerializer, RETRY_AFTER],
        responses={
            200: paginated("RaceResultPage", OutputSerializer),
            304: NOT_MODIFIED,
            **error_responses(400, 404, 503, 429),
        },
    )
    def get(self, request, race_id: int):
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        limit, cursor = filters.validated_data["limit"], filters.validated_data.get("cursor")
        race = _race_or_404(race_id)
        now = timezone.now()
        settled = selectors.race_results_settled(race=race, now=now)
        # Settled results never change: each page is read from DynamoDB once, then served from the cache.
        key = _results_cache_key(request, race.pk, limit, cursor) if settled else None
        body = cache.get(key) if key else None
        if body is None:
            rows, next_cursor = selectors.race_results_page(race=race, limit=limit, cursor=cursor, now=now)
            body = page_envelope(request, rows, next_cursor, ResultRows)
            if key:
                cache.set(key, body, RESULTS_CACHE_SECONDS)
        return _conditional(request, body, cache_control=IMMUTABLE if settled else REVALIDATE)


class ResultRows:
    """``RaceResultsApi.OutputSerializer(rows, many=True).data``, built directly.

    DRF's field machinery costs ~3 ms per 100 rows, a tenth of the page's budget; the serializer stays the
    schema, and a test checks that both give the same rows.
    """

    def __init__(self, rows: list[selectors.ResultRow], *, many: bool = True, context: dict | None = None) -> None:
        self.data = [
            {
                "rank": row.rank,
                "racer_id": int(row.racer_id),
                "name": str(row.name),
                "score": float(row.score),
                "second": int(row.second),
                "status": row.status,
                "finished_at": row.finished_at_ms,
            }
            for row in rows
        ]


def _results_cache_key(request, race_id: int, limit: int, cursor: str | None) -> str:
    # The body holds absolute "next" URLs, so the host and scheme are part of the key.
    origin = f"{request.scheme}://{request.get_host()}"
    digest = hashlib.sha256(f"{origin}|{limit}|{cursor or ''}".encode()).hexdigest()[:32]
    # A staff void changes settled results: it bumps the race's version (races.services.result_void).
    return f"leaderboards:results:{race_id}:v{results_version(race_id)}:{digest}"


@extend_schema_serializer(component_name="LiveRow")
class LiveRowSerializer(serializers.Serializer):
    rank = serializers.IntegerField()
    racer_id = serializers.IntegerField()
    name = serializers.CharField()
    score = serializers.FloatField()
    second = serializers.IntegerField(help_text="Latest second.")
    output = serializers.FloatField(help_text="Output at the latest second.")
    finished = serializers.BooleanField()


class RaceLiveApi(APIView):
    class FilterSerializer(serializers.Serializer):
        limit = serializers.IntegerField(min_value=1, max_value=1000, default=100, help_text="Top rows, 1–1000.")
        racer = serializers.IntegerField(
            min_value=0, max_value=MAX_ID, required=False, help_text="Also return this racer's own row."
        )

    @extend_schema_serializer(component_name="LiveStandings")
    class OutputSerializer(serializers.Serializer):
        race_id = serializers.IntegerField()
        class_id = serializers.IntegerField()
        version = serializers.IntegerField(help_text="Grows with every change of the live item; 0 before any.")
        updated_at = serializers.IntegerField(source="updated_at_ms", allow_null=True, help_text="ms since epoch.")
        total = serializers.IntegerField(help_text="Racers in the race (rows holds at most limit of them).")
        rows = LiveRowSerializer(many=True, help_text="Top rows, score desc, racer id asc.")
        racer = LiveRowSerializer(source="racer_row", allow_null=True, help_text="The ?racer= row, or null.")

    @extend_schema(
        summary="Live standings of a race",
        description=(
            "The current snapshot of the race's live item (one read): the top rows ranked by score desc, "
            "racer id asc, the total count, and the ?racer= row wherever it ranks. Empty before any reading."
        ),
        parameters=[FilterSerializer, RETRY_AFTER],
        responses={200: OutputSerializer, **error_responses(400, 404, 503, 429)},
    )
    def get(self, request, race_id: int):
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        race = _race_or_404(race_id)
        snapshot = selectors.live_snapshot_get(
            race=race, top=filters.validated_data["limit"], racer_id=filters.validated_data.get("racer")
        )
        return Response(self.OutputSerializer(snapshot).data, headers={"Cache-Control": "no-store"})


class ClassLeaderboardApi(APIView):
    class FilterSerializer(PageFilterSerializer):
        pass

    @extend_schema_serializer(component_name="LeaderboardRow")
    class OutputSerializer(serializers.Serializer):
        rank = serializers.IntegerField(help_text="1-based across pages.")
        racer_id = serializers.IntegerField()
        name = serializers.CharField()
        score = serializers.FloatField(help_text="The racer's best final score in this class.")
        race_id = serializers.IntegerField(help_text="The race of that best.")

    @extend_schema(
        summary="All-time leaderboard of a class",
        description="Each racer's best final score in the class, desc (ties by racer id asc), cursor-paginated.",
        parameters=[FilterSerializer, RETRY_AFTER],
        responses={200: paginated("LeaderboardPage", OutputSerializer), **error_responses(400, 404, 503, 429)},
    )
    def get(self, request, class_id: int):
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        if not selectors.class_exists(class_id=class_id):
            raise Http404("No race class with this id.")
        rows, next_cursor = selectors.class_leaderboard_page(
            class_id=class_id, limit=filters.validated_data["limit"], cursor=filters.validated_data.get("cursor")
        )
        return Response(page_envelope(request, rows, next_cursor, self.OutputSerializer))


def _accepts_gzip(request) -> bool:
    for part in request.headers.get("Accept-Encoding", "").split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip().lower() in ("gzip", "*"):
            return params.replace(" ", "") not in ("q=0", "q=0.0", "q=0.00", "q=0.000")
    return False


def _gunzip(chunks: Iterator[bytes]) -> Iterator[bytes]:
    decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
    for chunk in chunks:
        data = decompressor.decompress(chunk)
        if data:
            yield data
    tail = decompressor.flush()
    if tail:
        yield tail


def _stored_etag(request, *, gzip: bool) -> str | None:
    """The S3 ETag a client's If-None-Match names for this representation (gzip or identity)."""
    for tag in _if_none_match(request):
        if gzip and not tag.endswith(PLAIN_ETAG_SUFFIX + '"'):
            return tag
        if not gzip and tag.endswith(PLAIN_ETAG_SUFFIX + '"'):
            return tag[: -len(PLAIN_ETAG_SUFFIX) - 1] + '"'
    return None


def _representation_etag(stored: str, *, gzip: bool) -> str:
    return stored if gzip else stored[:-1] + PLAIN_ETAG_SUFFIX + '"'


class ClassHistoryApi(APIView):
    @extend_schema(
        summary="Per-second personal bests of a class (the All time ghost)",
        description=(
            'The history object `{"classId", "updatedAt", "racers": {"<racerId>": [output per second, null where '
            "never seen]}}` where index i is second i + 1. Sent gzip-compressed as stored (Content-Encoding: gzip) "
            "when the request accepts gzip, else decompressed. Before any history exists the body is "
            '`{"classId", "updatedAt": null, "racers": {}}`. ETag + If-None-Match (304).'
        ),
        parameters=[
            OpenApiParameter("Accept-Encoding", OpenApiTypes.STR, OpenApiParameter.HEADER, description="gzip"),
            OpenApiParameter(
                "Content-Encoding", OpenApiTypes.STR, OpenApiParameter.HEADER, response=[200], description="gzip"
            ),
            RETRY_AFTER,
        ],
        responses={
            (200, "application/json"): OpenApiResponse(OpenApiTypes.OBJECT, description="The history object."),
            304: NOT_MODIFIED,
            **error_responses(404, 503, 429),
        },
    )
    def get(self, request, class_id: int):
        if not selectors.class_exists(class_id=class_id):
            raise Http404("No race class with this id.")
        gzip = _accepts_gzip(request)
        history = integrations.history_object_get(class_id=class_id, if_none_match=_stored_etag(request, gzip=gzip))
        if history is None:
            body = orjson.dumps({"classId": class_id, "updatedAt": None, "racers": {}})
            response = HttpResponse(body, content_type="application/json")
            response["Cache-Control"] = HISTORY_CACHE
            return response
        if history.not_modified:
            response = HttpResponse(status=304)
        elif gzip:
            response = StreamingHttpResponse(history.chunks, content_type="application/json")
            response["Content-Encoding"] = "gzip"
            if history.content_length is not None:
                response["Content-Length"] = str(history.content_length)
        else:
            response = StreamingHttpResponse(_gunzip(history.chunks), content_type="application/json")
        if history.etag:
            response["ETag"] = _representation_etag(history.etag, gzip=gzip)
        response["Cache-Control"] = HISTORY_CACHE
        response["Vary"] = "Accept-Encoding"
        return response


@extend_schema_serializer(component_name="AllTimeSecond")
class AllTimeSecondSerializer(serializers.Serializer):
    second = serializers.IntegerField()
    count = serializers.IntegerField(help_text="Racers with a personal best at this second.")
    stride = serializers.IntegerField(
        help_text="1: every racer is listed and ranks are exact. n > 1: the top rows, then every n-th rank."
    )
    entries = serializers.ListField(
        child=serializers.ListField(child=serializers.FloatField(), min_length=3, max_length=3),
        help_text="[rank, racer_id, best output], rank asc (best desc, ties by racer id asc).",
    )


@extend_schema_serializer(component_name="AllTimeRacer")
class AllTimeRacerSerializer(serializers.Serializer):
    racer_id = serializers.IntegerField()
    bests = serializers.ListField(
        child=serializers.FloatField(allow_null=True), help_text="Best output at second i + 1, null if never."
    )


@method_decorator(gzip_page, name="dispatch")  # ~1 MB of JSON for a 1,000-racer class, ~0.4 MB gzipped
class AllTimeApi(APIView):
    class FilterSerializer(serializers.Serializer):
        racer = serializers.IntegerField(
            min_value=0, max_value=MAX_ID, required=False, help_text="Also return this racer's best at every second."
        )

    @extend_schema_serializer(component_name="AllTimeBoard")
    class OutputSerializer(serializers.Serializer):
        class_id = serializers.IntegerField()
        updated_at = serializers.IntegerField(allow_null=True, help_text="History last changed, ms since epoch.")
        racer_count = serializers.IntegerField(help_text="Racers with any personal best in the class.")
        seconds = AllTimeSecondSerializer(many=True, help_text="Second 1 first.")
        names = serializers.DictField(child=serializers.CharField(), help_text="Racer id -> name of listed racers.")
        racer = AllTimeRacerSerializer(allow_null=True, help_text="The ?racer= racer's bests, or null.")

    @extend_schema(
        operation_id="classes_all_time",
        summary="The All time board of a class",
        description=(
            "Every racer's personal-best output at each second of a race in this class (from the class history "
            "object), ranked per second and bounded: all racers while at most 200 have a best at a second, else "
            "the top 20 and every stride-th rank. A page loads it once per race and ranks the live racers' "
            "current output among these bests itself. ETag + If-None-Match (304)."
        ),
        parameters=[FilterSerializer, RETRY_AFTER],
        responses={200: OutputSerializer, 304: NOT_MODIFIED, **error_responses(400, 404, 503, 429)},
    )
    def get(self, request, class_id: int):
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        if not selectors.class_exists(class_id=class_id):
            raise Http404("No race class with this id.")
        board, racers = alltime.all_time_get(class_id=class_id)
        racer_id = filters.validated_data.get("racer")
        body = all_time_body(board, racers, racer_id)
        return _conditional(request, body, cache_control=REVALIDATE)


def all_time_body(board: alltime.AllTimeBoard, racers: dict, racer_id: int | None) -> dict:
    """``AllTimeApi.OutputSerializer`` built directly (tens of thousands of small entries)."""
    return {
        "class_id": board.class_id,
        "updated_at": board.updated_at_ms,
        "racer_count": board.racer_count,
        "seconds": [
            {"second": item.second, "count": item.count, "stride": item.stride, "entries": item.entries}
            for item in board.seconds
        ],
        "names": {str(key): name for key, name in board.names.items()},
        "racer": {"racer_id": racer_id, "bests": racers.get(racer_id, [])} if racer_id is not None else None,
    }


@extend_schema_serializer(component_name="PersonalBest")
class PersonalBestSerializer(serializers.Serializer):
    class_id = serializers.IntegerField()
    class_name = serializers.CharField()
    score = serializers.FloatField()
    race_id = serializers.IntegerField()


class RacerDetailApi(APIView):
    @extend_schema_serializer(component_name="Racer")
    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField(source="racer_id")
        name = serializers.CharField()
        registered = serializers.BooleanField(help_text="False for a racer known only from results.")
        personal_bests = PersonalBestSerializer(source="bests", many=True, help_text="One per class raced.")

    @extend_schema(
        summary="One racer and their personal bests",
        description="A registered racer, or one known from results only. Personal best per class (one read each).",
        parameters=[RETRY_AFTER],
        responses={200: OutputSerializer, **error_responses(404, 503, 429)},
    )
    def get(self, request, racer_id: int):
        profile = selectors.racer_profile_get(racer_id=racer_id)
        if profile is None:
            raise Http404("No racer with this id.")
        return Response(self.OutputSerializer(profile).data)


@extend_schema_serializer(component_name="PreviousRace")
class PreviousRaceSerializer(serializers.Serializer):
    race_id = serializers.IntegerField()
    score = serializers.FloatField()


class RacerRaceSummaryApi(APIView):
    @extend_schema_serializer(component_name="RacerRaceSummary")
    class OutputSerializer(serializers.Serializer):
        race_id = serializers.IntegerField()
        class_id = serializers.IntegerField()
        racer_id = serializers.IntegerField()
        name = serializers.CharField()
        status = serializers.ChoiceField(choices=[selectors.STATUS_FINISHED, selectors.STATUS_DNF])
        rank = serializers.IntegerField(allow_null=True, help_text="Among finishers; null for a DNF.")
        total = serializers.IntegerField(help_text="Racers in the race, finished or not.")
        score = serializers.FloatField(help_text="Final score, or the last known one for a DNF.")
        best_score = serializers.FloatField(allow_null=True, help_text="The racer's personal best in the class.")
        personal_best = serializers.BooleanField(help_text="This race is the racer's personal best in the class.")
        previous = PreviousRaceSerializer(allow_null=True, help_text="The racer's race before, same class.")

    @extend_schema(
        summary="How a racer did in a race",
        description=(
            "Rank of N, score, personal best or not, and the racer's previous race in the same class. "
            "404 when the racer has no final result and no live row in the race."
        ),
        parameters=[RETRY_AFTER],
        responses={200: OutputSerializer, **error_responses(404, 503, 429)},
    )
    def get(self, request, racer_id: int, race_id: int):
        race = _race_or_404(race_id)
        summary = selectors.race_summary_get(race=race, racer_id=racer_id)
        if summary is None:
            raise Http404("This racer has no result in this race.")
        return Response(self.OutputSerializer(summary).data, headers={"Cache-Control": "no-cache"})


class RacerResultsApi(APIView):
    class FilterSerializer(PageFilterSerializer):
        pass

    @extend_schema_serializer(component_name="RacerResult")
    class OutputSerializer(serializers.Serializer):
        race_id = serializers.IntegerField()
        class_id = serializers.IntegerField()
        class_name = serializers.CharField(allow_null=True)
        name = serializers.CharField(help_text="The name the racer rode under.")
        score = serializers.FloatField()
        second = serializers.IntegerField(help_text="Last second ridden.")
        finished_at = serializers.IntegerField(source="finished_at_ms", help_text="ms since epoch.")

    @extend_schema(
        summary="A racer's results",
        description="Final results across races, newest race first, cursor-paginated.",
        parameters=[FilterSerializer, RETRY_AFTER],
        responses={200: paginated("RacerResultPage", OutputSerializer), **error_responses(400, 404, 503, 429)},
    )
    def get(self, request, racer_id: int):
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        cursor = filters.validated_data.get("cursor")
        rows, next_cursor = selectors.racer_results_page(
            racer_id=racer_id, limit=filters.validated_data["limit"], cursor=cursor
        )
        if not rows and cursor is None and not selectors.racer_exists(racer_id=racer_id):
            raise Http404("No racer with this id.")
        return Response(page_envelope(request, rows, next_cursor, self.OutputSerializer))
