"""Lambda event filtering (FilterCriteria) as the local runner applies it."""

from __future__ import annotations

import base64
import json

import pytest

from processors.local.filters import kinesis_filter_view, matches, parse_filters

LIVE = parse_filters([{"Pattern": '{"dynamodb": {"Keys": {"sk": {"S": ["LIVE"]}}}}'}])


def record(sk: str, event_name: str = "MODIFY") -> dict:
    return {"eventName": event_name, "dynamodb": {"Keys": {"pk": {"S": "RACE#1"}, "sk": {"S": sk}}}}


class TestFilters:
    def test_the_templates_live_item_pattern(self) -> None:
        assert matches(LIVE, record("LIVE"))
        assert not matches(LIVE, record("RESULT#0000000000000001"))
        assert not matches(LIVE, {"eventName": "INSERT"})

    def test_no_patterns_match_everything(self) -> None:
        assert matches((), record("anything"))

    def test_any_pattern_and_any_value_of_a_list(self) -> None:
        patterns = parse_filters(
            [
                {"Pattern": {"eventName": ["INSERT", "MODIFY"]}},
                {"Pattern": {"dynamodb": {"Keys": {"sk": {"S": ["X"]}}}}},
            ]
        )
        assert matches(patterns, record("a", "INSERT"))
        assert matches(patterns, record("X", "REMOVE"))
        assert not matches(patterns, record("a", "REMOVE"))

    def test_operators(self) -> None:
        prefix = parse_filters([{"Pattern": {"dynamodb": {"Keys": {"sk": {"S": [{"prefix": "RESULT#"}]}}}}}])
        assert matches(prefix, record("RESULT#1")) and not matches(prefix, record("LIVE"))
        but = parse_filters([{"Pattern": {"eventName": [{"anything-but": ["REMOVE"]}]}}])
        assert matches(but, record("a", "INSERT")) and not matches(but, record("a", "REMOVE"))
        exists = parse_filters([{"Pattern": {"dynamodb": {"NewImage": [{"exists": False}]}}}])
        assert matches(exists, record("a")) and not matches(exists, {"dynamodb": {"NewImage": {}}})
        number = parse_filters([{"Pattern": {"data": {"second": [300]}}}])
        assert matches(number, {"data": {"second": 300.0}}) and not matches(number, {"data": {"second": "300"}})
        numeric = parse_filters([{"Pattern": {"data": {"second": [{"numeric": [">", 1, "<=", 300]}]}}}])
        assert matches(numeric, {"data": {"second": 300}}) and not matches(numeric, {"data": {"second": 301}})

    @pytest.mark.parametrize(
        "pattern",
        ['{"a": [{"nonsense": [">", 1]}]}', '{"a": "LIVE"}', "[1]", "{}"],
    )
    def test_unsupported_patterns_are_refused_when_read(self, pattern: str) -> None:
        with pytest.raises(ValueError):
            parse_filters([{"Pattern": pattern}])

    def test_kinesis_data_is_matched_decoded(self) -> None:
        data = base64.b64encode(json.dumps({"event": "final", "raceId": 7}).encode()).decode()
        view = kinesis_filter_view({"kinesis": {"data": data, "partitionKey": "7"}})
        assert matches(parse_filters([{"Pattern": {"data": {"event": ["final"]}}}]), view)
        assert view["kinesis"]["partitionKey"] == "7"
