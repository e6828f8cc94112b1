"""WebSocket routes of the leaderboards app (asgi.py wraps them in the connection limit and
AllowedHostsOriginValidator). Only the ride socket needs the user: the viewers' routes read no session,
so a storm of logged-in viewers costs the database nothing at connect."""

from channels.auth import AuthMiddlewareStack
from django.urls import path

from .consumers import ClassStandingsConsumer, RaceStandingsConsumer
from .ride import RideConsumer

websocket_urlpatterns: list = [
    path("ws/races/<int:race_id>/", RaceStandingsConsumer.as_asgi()),
    path("ws/classes/<int:class_id>/", ClassStandingsConsumer.as_asgi()),
    path("ws/ride/", AuthMiddlewareStack(RideConsumer.as_asgi())),
]
