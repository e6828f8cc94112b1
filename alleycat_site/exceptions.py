"""One error shape for the whole API: ``{"error": {"code", "message", "details"?}}``, and the one place
where the stores' errors are translated.

- ``ApplicationError`` and DRF's exceptions keep their status (400, 403, 404, 429...).
- A cursor we did not issue (``InvalidCursor``, ``CursorError``) is a 400 ``invalid_cursor``.
- Every failure of DynamoDB or S3 (``is_store_unavailable``) is a 503 with ``Retry-After``; the pages get the
  same answer as a friendly page from ``alleycat_site.middleware.StoreErrorsMiddleware``.
- Anything else is logged and answered with a JSON 500, never an HTML page.
"""

from __future__ import annotations

import logging

from botocore.exceptions import BotoCoreError, ClientError
from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

logger = logging.getLogger(__name__)

INVALID_CURSOR = "This cursor was not issued for this list."
STORE_RETRY_AFTER_SECONDS = 5

# ClientError codes that say "the store cannot serve us now" (credentials, throttling, the service itself,
# a table or bucket not there yet) rather than "this request is wrong". A code not listed here whose HTTP
# status is 5xx counts too; a ValidationException stays a 500: it is a bug in a request we built.
_UNAVAILABLE_CLIENT_ERRORS = frozenset(
    {
        # credentials and signing
        "AccessDenied",
        "AccessDeniedException",
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidAccessKeyId",
        "InvalidClientTokenId",
        "InvalidSignatureException",
        "MissingAuthenticationToken",
        "RequestExpired",
        "SignatureDoesNotMatch",
        "UnrecognizedClientException",
        # throttling and capacity
        "LimitExceededException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "TooManyRequestsException",
        # the service
        "InternalError",
        "InternalFailure",
        "InternalServerError",
        "RequestTimeout",
        "RequestTimeoutException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        # not set up (yet): the table or bucket is missing
        "NoSuchBucket",
        "ResourceNotFoundException",
    }
)


def is_invalid_cursor(exc: BaseException) -> bool:
    from leaderboards.selectors import CursorError
    from processors.table import InvalidCursor

    return isinstance(exc, InvalidCursor | CursorError)


def is_store_unavailable(exc: BaseException) -> bool:
    """True for every way DynamoDB or S3 can fail us: unreachable, hung, throttling, credentials, missing."""
    from leaderboards.integrations import HistoryUnavailable
    from processors.table import StoreUnavailable

    if isinstance(exc, StoreUnavailable | HistoryUnavailable | BotoCoreError):
        # BotoCoreError: EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError, NoCredentialsError, ...
        return True
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        status_code = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        return error.get("Code") in _UNAVAILABLE_CLIENT_ERRORS or int(status_code) >= 500
    return False


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
    retry_after = STORE_RETRY_AFTER_SECONDS


def error_body(code: str, message, details=None) -> dict:
    body = {"error": {"code": code, "message": message}}
    if details:
        body["error"]["details"] = details
    return body


def api_exception_handler(exc, context):
    if is_invalid_cursor(exc):
        exc = ApplicationError(INVALID_CURSOR, code="invalid_cursor")
    elif is_store_unavailable(exc):
        logger.warning("Results store unavailable: %r", exc)
        exc = ServiceUnavailable()
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
            error_body("server_error", "Something went wrong on our side."),
            status=status.HTTP_500_INTERNAL_SERVER_ERROR,
        )

    if isinstance(exc, exceptions.ValidationError):
        response.data = error_body("invalid", "Invalid request parameters.", exc.detail)
    elif isinstance(exc, exceptions.APIException):
        detail = exc.detail
        code = exc.get_codes() if isinstance(exc.get_codes(), str) else exc.default_code
        response.data = error_body(code, str(detail))
        extra = getattr(exc, "extra", None)
        if extra:
            response.data["error"].update(extra)
    if isinstance(exc, ServiceUnavailable):
        response["Retry-After"] = str(exc.retry_after)
    return response


def json_not_found(request, exception=None):
    return JsonResponse(error_body("not_found", "Not found."), status=404)


def json_server_error(request):
    return JsonResponse(error_body("server_error", "Something went wrong on our side."), status=500)
