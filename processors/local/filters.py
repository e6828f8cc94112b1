"""Event filtering of an event source mapping (``FilterCriteria``), as Lambda applies it before invoking.

A record is delivered when it matches at least one filter pattern; the others count as processed
(the checkpoint moves past them) without an invocation. Patterns use Lambda's (EventBridge's)
syntax, so the matching is moto's EventBridge matcher (``moto.events.models.EventPattern``: nested
objects, lists of values, ``prefix``, ``suffix``, ``exists``, ``anything-but``, ``numeric``,
``equals-ignore-case``, ``wildcard``, ``$or``); a pattern it refuses raises :class:`ValueError` when
the template is read, never a silent mismatch. One difference from Lambda, inherited: moto compares
with ``==``, so ``[true]`` also matches ``1``.

The record matched is the one of the Lambda event (DynamoDB: ``{"eventName", "dynamodb": {"Keys",
"NewImage", ...}}``); for Kinesis, ``data`` is the decoded JSON payload, as Lambda matches it (that
view is Lambda's, not EventBridge's: :func:`kinesis_filter_view`).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from typing import Any, cast

from moto.events.models import EventPattern

# moto's matcher treats an operator it does not know as "matches": refuse those when the template is read.
_OPERATORS = frozenset(
    {"prefix", "suffix", "exists", "anything-but", "numeric", "equals-ignore-case", "wildcard", "cidr"}
)


def parse_filters(filters: Sequence[Mapping[str, Any]]) -> tuple[dict[str, Any], ...]:
    """The patterns of a template's ``FilterCriteria.Filters`` (each ``Pattern`` a JSON string or an object)."""
    patterns = []
    for entry in filters:
        raw = entry.get("Pattern")
        text = raw if isinstance(raw, str) else json.dumps(raw)
        try:
            pattern = EventPattern.load(text).get_pattern()
        except Exception as exc:  # moto raises its own exception types, or AttributeError for a non-object
            raise ValueError(f"invalid filter pattern {text}: {exc}") from exc
        if not isinstance(pattern, dict) or not pattern:
            raise ValueError(f"filter pattern must be a non-empty JSON object: {text}")
        _check_operators(pattern)
        patterns.append(pattern)
    return tuple(patterns)


def _check_operators(pattern: Mapping[str, Any]) -> None:
    for key, rule in pattern.items():
        rules = rule if key == "$or" else [rule]
        for each in rules:
            if isinstance(each, dict):
                _check_operators(each)
            elif isinstance(each, list):
                for element in each:
                    if isinstance(element, dict) and (len(element) != 1 or not set(element) <= _OPERATORS):
                        raise ValueError(f"unsupported filter operator in {key!r}: {element!r}")


def matches(patterns: Sequence[Mapping[str, Any]], record: Mapping[str, Any]) -> bool:
    """True when there are no patterns or ``record`` matches at least one."""
    event = cast(Any, record)  # moto types its events as EventBridge's envelope; any JSON object matches the same way
    return not patterns or any(EventPattern(None, dict(pattern)).matches_event(event) for pattern in patterns)


def kinesis_filter_view(record: Mapping[str, Any]) -> dict[str, Any]:
    """A Kinesis event record with ``data`` as Lambda matches it: the decoded JSON payload (else the text)."""
    kinesis = dict(record.get("kinesis", {}))
    try:
        kinesis["data"] = json.loads(base64.b64decode(kinesis.get("data", ""), validate=True))
    except (binascii.Error, ValueError):
        pass
    return {**record, "kinesis": kinesis, "data": kinesis.get("data")}
