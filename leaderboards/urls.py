"""API routes of the leaderboards app (mounted under /api/)."""

app_name = "leaderboards"

urlpatterns: list = []
