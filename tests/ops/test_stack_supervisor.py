"""``ops.stack``: a child that dies is started again; a child in a crash loop stops the stack."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

import pytest

from ops import stack as stack_module
from ops.stack import Service, Stack
from tests.conftest import wait_until

SLEEPER = [sys.executable, "-c", "import time; print('up', flush=True); time.sleep(600)"]
CRASHER = [sys.executable, "-c", "raise SystemExit(3)"]


@pytest.fixture
def fast_restarts(monkeypatch):
    monkeypatch.setattr(stack_module, "RESTART_PAUSE_SECONDS", 0.1)


def run_in_thread(stack: Stack) -> tuple[threading.Thread, dict[str, int]]:
    outcome: dict[str, int] = {}
    thread = threading.Thread(target=lambda: outcome.setdefault("code", stack.wait()), daemon=True)
    thread.start()
    return thread, outcome


def test_a_killed_child_is_started_again_and_the_others_keep_running(tmp_path, fast_restarts):
    stack = Stack([Service("one", SLEEPER), Service("two", SLEEPER)], cwd=tmp_path, base_env=dict(os.environ))
    try:
        stack.start()
        first, other = stack.procs["one"].pid, stack.procs["two"].pid
        thread, outcome = run_in_thread(stack)
        os.killpg(first, signal.SIGKILL)
        wait_until(lambda: stack.procs["one"].pid != first, timeout=30, what="the killed child started again")
        assert stack.procs["one"].poll() is None
        assert stack.procs["two"].pid == other and stack.procs["two"].poll() is None
        assert thread.is_alive() and "code" not in outcome
        stack.request_stop()
        thread.join(timeout=30)
        assert outcome == {"code": 0}
    finally:
        stack.stop()
    assert all(proc.poll() is not None for proc in stack.procs.values())


def test_a_crash_loop_stops_the_stack_with_a_failure(tmp_path, fast_restarts):
    stack = Stack([Service("steady", SLEEPER), Service("broken", CRASHER)], cwd=tmp_path, base_env=dict(os.environ))
    try:
        stack.start()
        steady = stack.procs["steady"]
        started = time.monotonic()
        thread, outcome = run_in_thread(stack)
        thread.join(timeout=60)
        assert outcome == {"code": 1}
        assert len(stack.restarts["broken"]) == stack_module.MAX_RESTARTS
        assert time.monotonic() - started < stack_module.RESTART_WINDOW_SECONDS
        assert steady.poll() is None  # stopping the rest is run_stack's ``finally``
    finally:
        stack.stop()
    assert steady.poll() is not None


def test_stand_ins_run_below_the_web_tier(tmp_path, monkeypatch):
    """The AWS stand-ins and the simulator get ``ALLEYCAT_STANDIN_NICE`` (default 0); the web tier does not."""
    from ops.management.commands.runstack import pipeline_services, standin_nice

    monkeypatch.delenv("ALLEYCAT_STANDIN_NICE", raising=False)
    assert standin_nice() == 0
    monkeypatch.setenv("ALLEYCAT_STANDIN_NICE", "5")
    assert standin_nice() == 5
    monkeypatch.setenv("ALLEYCAT_STANDIN_NICE", "not a number")
    assert standin_nice() == 0
    monkeypatch.setenv("ALLEYCAT_STANDIN_NICE", "40")
    assert standin_nice() == 19
    monkeypatch.setenv("ALLEYCAT_STANDIN_NICE", "7")
    stand_ins = pipeline_services(python=sys.executable, base_env=dict(os.environ))
    assert {service.name for service in stand_ins} >= {"aws", "runner"}
    assert {service.nice for service in stand_ins} == {7}
    stack = Stack([Service("web", SLEEPER), Service("aws", SLEEPER, nice=5)], cwd=tmp_path, base_env=dict(os.environ))
    try:
        stack.start()
        own = os.getpriority(os.PRIO_PROCESS, 0)
        assert os.getpriority(os.PRIO_PROCESS, stack.procs["web"].pid) == own
        assert os.getpriority(os.PRIO_PROCESS, stack.procs["aws"].pid) == min(19, own + 5)
    finally:
        stack.stop()
