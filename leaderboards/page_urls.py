"""Web pages of the leaderboards app (mounted at /)."""

app_name = "pages"

urlpatterns: list = []
