"""Functions run in their own process by the runner (processors.local.sandbox), like Lambda sandboxes."""

from __future__ import annotations

import os
import time

import pytest

from processors.local.sandbox import FunctionError, Sandbox

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
        first = box({"a": [1, 2], "b": "x"})
        second = box({"c": None})
    finally:
        box.close()
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
