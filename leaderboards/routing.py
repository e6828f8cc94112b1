"""WebSocket routes of the leaderboards app (asgi.py wraps them in AllowedHostsOriginValidator + auth)."""

from django.urls import path

from .consumers import ClassStandingsConsumer, RaceStandingsConsumer
from .ride import RideConsumer

websocket_urlpatterns: list = [
    path("ws/races/<int:race_id>/", RaceStandingsConsumer.as_asgi()),
    path("ws/classes/<int:class_id>/", ClassStandingsConsumer.as_asgi()),
    path("ws/ride/", RideConsumer.as_asgi()),
]
