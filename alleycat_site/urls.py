from django.contrib import admin
from django.http import JsonResponse
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from races.admin_deadletters import dead_letters_view
from races.admin_pipeline import pipeline_status_view

from .exceptions import json_not_found


def health(request):
    return JsonResponse({"status": "ok"})


urlpatterns = [
    path("admin/pipeline/", pipeline_status_view, name="admin-pipeline"),  # before admin/: not a model page
    path("admin/dead-letters/", dead_letters_view, name="admin-dead-letters"),
    path("admin/", admin.site.urls),
    path("api/", include("races.urls")),
    path("api/", include("leaderboards.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("healthz", health, name="health"),
    path("", include("leaderboards.page_urls")),
]


def handler404(request, exception=None):
    """JSON under /api/, Django's page elsewhere."""
    if request.path.startswith("/api/"):
        return json_not_found(request, exception)
    from django.views.defaults import page_not_found

    return page_not_found(request, exception)


def handler500(request):
    if request.path.startswith("/api/"):
        from .exceptions import json_server_error

        return json_server_error(request)
    from django.views.defaults import server_error

    return server_error(request)
