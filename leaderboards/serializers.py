"""Pieces shared by the leaderboards APIs: the error body, documented error responses, list envelopes.

Each API keeps its own nested Input/Filter/Output serializers; only the envelope is shared.
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema_serializer
from rest_framework import serializers
from rest_framework.utils.urls import replace_query_param

from .selectors import MAX_CURSOR_LENGTH

MAX_LIMIT = 1000


@extend_schema_serializer(component_name="ErrorDetail")
class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Machine-readable code, e.g. invalid, invalid_cursor, not_found.")
    message = serializers.CharField()
    details = serializers.JSONField(required=False, help_text="Per-parameter messages for 400 invalid.")


@extend_schema_serializer(component_name="Error")
class ErrorSerializer(serializers.Serializer):
    error = ErrorDetailSerializer()


RETRY_AFTER = OpenApiParameter(
    "Retry-After",
    OpenApiTypes.INT,
    location=OpenApiParameter.HEADER,
    description="Seconds to wait before retrying.",
    response=[503, 429],
)

ERROR_400 = OpenApiResponse(ErrorSerializer, description="Bad parameters, or a cursor this list did not issue.")
ERROR_404 = OpenApiResponse(ErrorSerializer, description="Unknown id.")
ERROR_503 = OpenApiResponse(
    ErrorSerializer, description="DynamoDB or S3 cannot be reached; the Retry-After header says when to try again."
)
ERROR_429 = OpenApiResponse(ErrorSerializer, description="Too many requests; Retry-After says when to retry.")
NOT_MODIFIED = OpenApiResponse(description="Not modified: the If-None-Match ETag is current. No body.")


def error_responses(*codes: int) -> dict[int, OpenApiResponse]:
    known = {400: ERROR_400, 404: ERROR_404, 429: ERROR_429, 503: ERROR_503}
    return {code: known[code] for code in codes}


def paginated(name: str, item: type[serializers.Serializer]) -> type[serializers.Serializer]:
    """A documented ``{"results": [...], "next_cursor", "next"}`` envelope around ``item``."""
    return extend_schema_serializer(component_name=name)(
        type(
            f"{name}Serializer",
            (serializers.Serializer,),
            {
                "results": item(many=True),
                "next_cursor": serializers.CharField(
                    allow_null=True, help_text="Pass as ?cursor= for the next page; null on the last page."
                ),
                "next": serializers.URLField(allow_null=True, help_text="The next page's URL, or null."),
            },
        )
    )


def page_envelope(
    request, rows: list, next_cursor: str | None, item: type[serializers.Serializer], *, context: dict | None = None
) -> dict:
    url = replace_query_param(request.build_absolute_uri(), "cursor", next_cursor) if next_cursor else None
    return {"results": item(rows, many=True, context=context or {}).data, "next_cursor": next_cursor, "next": url}


class PageFilterSerializer(serializers.Serializer):
    limit = serializers.IntegerField(
        min_value=1, max_value=MAX_LIMIT, default=100, help_text=f"Rows per page, 1–{MAX_LIMIT}."
    )
    cursor = serializers.CharField(
        required=False, max_length=MAX_CURSOR_LENGTH, help_text="The next_cursor of the previous page (opaque)."
    )
