"""Web pages of the leaderboards app (mounted at /)."""

from django.contrib.auth import views as auth_views
from django.urls import path

from alleycat_site import converters  # noqa: F401  registers <id:...>

from . import views

app_name = "pages"

urlpatterns = [
    path("", views.home, name="home"),
    path("classes/<id:class_id>/", views.class_live, name="class-live"),
    path("classes/<id:class_id>/leaderboard/", views.class_leaderboard, name="class-leaderboard"),
    path("races/<id:race_id>/", views.race_results, name="race-results"),
    path("racers/<id:racer_id>/", views.racer_detail, name="racer"),
    path("ride/", views.ride, name="ride"),
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(template_name="leaderboards/login.html", next_page="pages:ride"),
        name="login",
    ),
    path("accounts/logout/", auth_views.LogoutView.as_view(next_page="pages:home"), name="logout"),
]
