"""Event filtering of an event source mapping (``FilterCriteria``), as Lambda applies it before invoking.

A record is delivered when it matches at least one filter pattern; the others count as processed
(the checkpoint moves past them) without an invocation. Patterns use Lambda's (EventBridge's) syntax;
the subset supported here: nested objects, lists of exact values (strings, numbers, ``null``),
``{"prefix": "..."}``, ``{"exists": true|false}`` and ``{"anything-but": value or [values]}``. Another
operator raises :class:`ValueError` when the template is read, never a silent mismatch.

The record matched is the one of the Lambda event (DynamoDB: ``{"eventName", "dynamodb": {"Keys",
"NewImage", ...}}``); for Kinesis, ``data`` is the decoded JSON payload, as Lambda matches it.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from typing import Any

_OPERATORS = frozenset({"prefix", "exists", "anything-but"})
_MISSING = object()


def parse_filters(filters: Sequence[Mapping[str, Any]]) -> tuple[dict[str, Any], ...]:
    """The patterns of a template's ``FilterCriteria.Filters`` (each ``Pattern`` a JSON string or an object)."""
    patterns = []
    for entry in filters:
        pattern = entry.get("Pattern")
        if isinstance(pattern, str):
            pattern = json.loads(pattern)
        if not isinstance(pattern, dict):
            raise ValueError(f"filter pattern must be a JSON object: {pattern!r}")
        _check(pattern)
        patterns.append(pattern)
    return tuple(patterns)


def _check(pattern: Mapping[str, Any]) -> None:
    for key, rule in pattern.items():
        if isinstance(rule, dict):
            _check(rule)
        elif isinstance(rule, list):
            for element in rule:
                if isinstance(element, dict):
                    unknown = set(element) - _OPERATORS
                    if unknown or len(element) != 1:
                        raise ValueError(f"unsupported filter operator in {key!r}: {element!r}")
                elif not (element is None or isinstance(element, str | int | float | bool)):
                    raise ValueError(f"unsupported filter value in {key!r}: {element!r}")
        else:
            raise ValueError(f"filter rule of {key!r} must be an object or a list: {rule!r}")


def matches(patterns: Sequence[Mapping[str, Any]], record: Mapping[str, Any]) -> bool:
    """True when there are no patterns or ``record`` matches at least one."""
    return not patterns or any(_match(pattern, record) for pattern in patterns)


def _match(pattern: Mapping[str, Any], value: Any) -> bool:
    if not isinstance(value, Mapping):
        return False
    for key, rule in pattern.items():
        field = value.get(key, _MISSING)
        if isinstance(rule, dict):
            if field is _MISSING or not _match(rule, field):
                return False
        elif not _match_values(rule, field):
            return False
    return True


def _match_values(rule: Sequence[Any], field: Any) -> bool:
    candidates = field if isinstance(field, list) else [field]
    for element in rule:
        if isinstance(element, dict) and "exists" in element:
            if bool(element["exists"]) == (field is not _MISSING):
                return True
            continue
        if field is _MISSING:
            continue
        if any(_match_value(element, candidate) for candidate in candidates):
            return True
    return False


def _match_value(element: Any, candidate: Any) -> bool:
    if isinstance(element, dict):
        if "prefix" in element:
            return isinstance(candidate, str) and candidate.startswith(element["prefix"])
        excluded = element["anything-but"]
        excluded = excluded if isinstance(excluded, list) else [excluded]
        return not any(_equal(value, candidate) for value in excluded)
    return _equal(element, candidate)


def _equal(expected: Any, candidate: Any) -> bool:
    if isinstance(expected, bool) or isinstance(candidate, bool):
        return expected is candidate
    if isinstance(expected, int | float) and isinstance(candidate, int | float):
        return float(expected) == float(candidate)
    return expected == candidate


def kinesis_filter_view(record: Mapping[str, Any]) -> dict[str, Any]:
    """A Kinesis event record with ``data`` as Lambda matches it: the decoded JSON payload (else the text)."""
    kinesis = dict(record.get("kinesis", {}))
    try:
        kinesis["data"] = json.loads(base64.b64decode(kinesis.get("data", ""), validate=True))
    except (binascii.Error, ValueError):
        pass
    return {**record, "kinesis": kinesis, "data": kinesis.get("data")}
