"""API routes of the leaderboards app (mounted under /api/; /api/classes/ and current-race live in races)."""

from django.urls import path

from alleycat_site import converters  # noqa: F401  registers <id:...>

from .apis import (
    ClassHistoryApi,
    ClassLeaderboardApi,
    RaceDetailApi,
    RaceListApi,
    RaceLiveApi,
    RacerDetailApi,
    RaceResultsApi,
    RacerResultsApi,
)

app_name = "leaderboards"

urlpatterns = [
    path("races/", RaceListApi.as_view(), name="race-list"),
    path("races/<id:race_id>/", RaceDetailApi.as_view(), name="race-detail"),
    path("races/<id:race_id>/results/", RaceResultsApi.as_view(), name="race-results"),
    path("races/<id:race_id>/live/", RaceLiveApi.as_view(), name="race-live"),
    path("classes/<id:class_id>/leaderboard/", ClassLeaderboardApi.as_view(), name="class-leaderboard"),
    path("classes/<id:class_id>/history/", ClassHistoryApi.as_view(), name="class-history"),
    path("racers/<id:racer_id>/", RacerDetailApi.as_view(), name="racer-detail"),
    path("racers/<id:racer_id>/results/", RacerResultsApi.as_view(), name="racer-results"),
]
