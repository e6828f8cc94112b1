"""Schedule endpoints bikes and the web pages use to find the current race."""

from __future__ import annotations

from django.http import Http404
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from alleycat_site.exceptions import ApplicationError

from .models import RaceClass
from .selectors import race_class_list_with_current, race_current_for_class, race_next_for_class, seconds_remaining

NO_CURRENT_RACE = "This class has no race running now."


class RaceSummarySerializer(serializers.Serializer):
    id = serializers.IntegerField(source="race.pk")
    class_id = serializers.IntegerField(source="race.race_class_id")
    starts_at = serializers.DateTimeField(source="race.starts_at")
    ends_at = serializers.DateTimeField(source="race.ends_at")
    seconds_remaining = serializers.IntegerField()
    status = serializers.CharField()


def _race_summary(race, now) -> dict:
    return {"race": race, "seconds_remaining": seconds_remaining(race=race, now=now), "status": race.state_at(now)}


class ClassListApi(APIView):
    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField(source="race_class.pk")
        name = serializers.CharField(source="race_class.name")
        description = serializers.CharField(source="race_class.description")
        display_order = serializers.IntegerField(source="race_class.display_order")
        current_race = RaceSummarySerializer(allow_null=True)
        next_race = RaceSummarySerializer(allow_null=True)

    @extend_schema(
        summary="Race classes with their current race",
        description="Enabled classes in display order, each with the race running now (or null) and the next one.",
        responses=OutputSerializer(many=True),
    )
    def get(self, request):
        now = timezone.now()
        rows = [
            {
                "race_class": item.race_class,
                "current_race": _race_summary(item.current, now) if item.current else None,
                "next_race": _race_summary(item.next, now) if item.next else None,
            }
            for item in race_class_list_with_current(now=now)
        ]
        return Response(self.OutputSerializer(rows, many=True).data)


class ClassCurrentRaceApi(APIView):
    OutputSerializer = RaceSummarySerializer

    @extend_schema(
        summary="The current race of a class",
        description="The race bikes should send to now. 404 when the class is unknown or has no race running.",
        responses={200: RaceSummarySerializer},
    )
    def get(self, request, class_id: int):
        if not RaceClass.objects.filter(pk=class_id).exists():
            raise Http404("No race class with this id.")
        now = timezone.now()
        race = race_current_for_class(class_id=class_id, now=now)
        if race is None:
            upcoming = race_next_for_class(class_id=class_id, now=now)
            extra = {"nextRaceStartsAt": upcoming.starts_at.isoformat()} if upcoming else {}
            raise ApplicationError(NO_CURRENT_RACE, code="no_current_race", status_code=404, extra=extra)
        return Response(self.OutputSerializer(_race_summary(race, now)).data)
