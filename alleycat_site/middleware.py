"""Site-wide middleware: the stores' errors as friendly pages, the JSON 404 under /api/."""

from __future__ import annotations

import logging

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from .exceptions import INVALID_CURSOR, STORE_RETRY_AFTER_SECONDS, error_body, is_invalid_cursor, is_store_unavailable

logger = logging.getLogger(__name__)

STORE_UNAVAILABLE_MESSAGE = "Results are unavailable right now. Please try again in a minute."
BAD_CURSOR_MESSAGE = "That page link is not valid any more. Start again from the first page."
PAGE_RETRY_AFTER_SECONDS = 30


class StoreErrorsMiddleware:
    """The one translation of the stores' errors for page views (the API's is ``api_exception_handler``).

    A view lets ``StoreUnavailable``, botocore's errors and forged cursors propagate; this answers a 503 page
    with Retry-After or a 400 page with a link to the first page, never a 500.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        api = request.path.startswith("/api/")
        if is_invalid_cursor(exception):
            if api:
                return JsonResponse(error_body("invalid_cursor", INVALID_CURSOR), status=400)
            return render(
                request,
                "leaderboards/unavailable.html",
                {"message": BAD_CURSOR_MESSAGE, "title": "Page not found", "restart_url": request.path},
                status=400,
            )
        if is_store_unavailable(exception):
            logger.warning("Results store unavailable on %s: %r", request.path, exception)
            if api:
                response = JsonResponse(
                    error_body("service_unavailable", "The results store is unreachable right now."), status=503
                )
                response["Retry-After"] = str(STORE_RETRY_AFTER_SECONDS)
                return response
            response = render(
                request,
                "leaderboards/unavailable.html",
                {"message": STORE_UNAVAILABLE_MESSAGE, "title": "Results unavailable"},
                status=503,
            )
            response["Retry-After"] = str(PAGE_RETRY_AFTER_SECONDS)
            return response
        return None
