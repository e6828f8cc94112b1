"""One error shape for the whole API: ``{"error": {"code", "message", "details"?}}``.

- ``ApplicationError`` and DRF's exceptions keep their status (400, 403, 404, 429...).
- ``ServiceUnavailable`` (DynamoDB or S3 unreachable) is a 503 with ``Retry-After``.
- Anything else is logged and answered with a JSON 500, never an HTML page.
"""

from __future__ import annotations

import logging

from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

logger = logging.getLogger(__name__)


class ApplicationError(exceptions.APIException):
    """A domain error with a code and a message the client can show."""

    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None, status_code: int | None = None, extra=None):
        super().__init__(detail=message, code=code or self.default_code)
        if status_code is not None:
            self.status_code = status_code
        self.extra = extra or {}


class ServiceUnavailable(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "The results store is unreachable right now. Try again shortly."
    default_code = "service_unavailable"
    retry_after = 5


def _error_body(code: str, message, details=None) -> dict:
    body = {"error": {"code": code, "message": message}}
    if details:
        body["error"]["details"] = details
    return body


def api_exception_handler(exc, context):
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(exc.message_dict if hasattr(exc, "error_dict") else exc.messages)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) or "Not found.")
    if isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()

    response = exception_handler(exc, context)
    if response is None:
        logger.exception("Unhandled API error", exc_info=exc)
        return Response(
            _error_body("server_error", "Something went wrong on our side."),
            status=status.HTTP_500_INTERNAL_SERVER_ERROR,
        )

    if isinstance(exc, exceptions.ValidationError):
        response.data = _error_body("invalid", "Invalid request parameters.", exc.detail)
    elif isinstance(exc, exceptions.APIException):
        detail = exc.detail
        code = exc.get_codes() if isinstance(exc.get_codes(), str) else exc.default_code
        response.data = _error_body(code, str(detail))
        extra = getattr(exc, "extra", None)
        if extra:
            response.data["error"].update(extra)
    if isinstance(exc, ServiceUnavailable):
        response["Retry-After"] = str(exc.retry_after)
    return response


def json_not_found(request, exception=None):
    return JsonResponse(_error_body("not_found", "Not found."), status=404)


def json_server_error(request):
    return JsonResponse(_error_body("server_error", "Something went wrong on our side."), status=500)
