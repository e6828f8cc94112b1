"""Functions run in their own process by the runner (processors.local.sandbox), like Lambda sandboxes."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processors.local.sandbox import FunctionError, Sandbox, from_json, to_json

MODULE = __name__


def echo(event: dict, context) -> dict:
    return {
        "event": event,
        "pid": os.getpid(),
        "function": context.function_name,
        "left": context.get_remaining_time_in_millis(),
    }


def fail(event: dict, context) -> None:
    raise ValueError(f"bad input {event['n']}")


def slow(event: dict, context) -> str:
    time.sleep(event["seconds"])
    return "done"


def sandbox(attribute: str, timeout: int = 30) -> Sandbox:
    return Sandbox(
        function=attribute, module=MODULE, attribute=attribute, region="us-east-1", memory_mb=128, timeout=timeout
    )


def test_an_invocation_runs_in_another_process_with_a_json_event_and_a_context():
    box = sandbox("echo")
    try:
        assert box.pid is None  # started on its first invocation
        first = box({"a": [1, 2], "b": "x"})
        second = box({"c": None})
        assert box.pid == first["pid"]  # what the runner's status file reports for the function
    finally:
        box.close()
    assert box.pid is None
    assert first["event"] == {"a": [1, 2], "b": "x"} and second["event"] == {"c": None}
    assert first["pid"] != os.getpid() and first["pid"] == second["pid"]  # one warm sandbox, reused
    assert first["function"] == "echo" and 0 < first["left"] <= 30_000


def test_an_exception_is_a_function_error_and_the_sandbox_stays_usable():
    box = sandbox("fail")
    try:
        with pytest.raises(FunctionError, match="ValueError: bad input 7"):
            box({"n": 7})
        with pytest.raises(FunctionError, match="bad input 8"):
            box({"n": 8})
    finally:
        box.close()


def test_a_function_running_past_its_timeout_is_killed_and_the_next_call_gets_a_new_sandbox():
    box = sandbox("slow", timeout=1)
    try:
        assert box({"seconds": 0}) == "done"  # warm: the cold start's import allowance is over
        started = time.monotonic()
        with pytest.raises(FunctionError, match="timed out after 1 seconds"):
            box({"seconds": 30})
        assert time.monotonic() - started < 5
        assert box({"seconds": 0}) == "done"
    finally:
        box.close()


_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(_json_values)
def test_payloads_cross_the_pipe_as_the_standard_json_writes_and_reads_them(value):
    written = to_json(value)
    assert json.loads(written) == value
    assert from_json(json.dumps(value).encode()) == json.loads(json.dumps(value)) or _has_big_int(value)


def _has_big_int(value) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return not -(2**63) <= value < 2**64
    if isinstance(value, list):
        return any(_has_big_int(item) for item in value)
    if isinstance(value, dict):
        return any(_has_big_int(item) for item in value.values())
    return False


def test_a_reply_json_cannot_hold_is_written_with_str_as_before():
    moment = datetime(2026, 12, 5, 2, 30, tzinfo=UTC)
    assert json.loads(to_json({"at": moment, 7: {3}}, lenient=True)) == {"at": str(moment), "7": str({3})}
    with pytest.raises(TypeError):
        to_json({"at": moment})
