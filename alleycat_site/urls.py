from django.contrib import admin
from django.http import HttpResponsePermanentRedirect, JsonResponse
from django.urls import Resolver404, include, path, re_path, resolve
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from ops.admin_deadletters import dead_letters_view
from ops.admin_pipeline import pipeline_status_view

from .exceptions import json_not_found


def health(request):
    return JsonResponse({"status": "ok"})


def api_not_found(request, rest: str = ""):
    """Any other path under /api/: a JSON 404 (the HTML 404 page is for people), in DEBUG mode too.

    Matching every path here takes APPEND_SLASH's redirect away from CommonMiddleware, so it is done here.
    """
    if not request.path_info.endswith("/"):
        try:
            match = resolve(request.path_info + "/")
        except Resolver404:
            match = None
        if match is not None and match.func is not api_not_found:
            query = request.META.get("QUERY_STRING")
            return HttpResponsePermanentRedirect(request.path + "/" + (f"?{query}" if query else ""))
    return json_not_found(request)


urlpatterns = [
    path("admin/pipeline/", pipeline_status_view, name="admin-pipeline"),  # before admin/: not a model page
    path("admin/dead-letters/", dead_letters_view, name="admin-dead-letters"),
    path("admin/", admin.site.urls),
    path("api/", include("races.urls")),
    path("api/", include("leaderboards.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves Swagger UI's init script as its own request (?script=): no inline script for the CSP.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="api-docs"),
    re_path(r"^api/(?P<rest>.*)$", api_not_found),  # last of /api/: what nothing above matched
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
