"""The runner SIGKILLed three times at random moments of a race (no graceful stop, no final checkpoint) and
started again each time: the race equals the recomputation from the messages sent — records lost 0 (the
checkpoint is never ahead of what was processed) and double counts 0 (records read again count once)."""

from __future__ import annotations

import time

import pytest

from processors.local.simulator import RaceSpec
from tests.conftest import wait_until
from tests.reliability.conftest import TIMEOUT, Rig, assert_exact, random_moment

pytestmark = [pytest.mark.e2e, pytest.mark.reliability]


def test_runner_killed_at_random_moments_loses_and_doubles_nothing(rig: Rig):
    runner = rig.runner()
    wait_until(lambda: rig.status() is not None, timeout=TIMEOUT, what="the runner polling", output=rig.output)
    race = RaceSpec(race_id=8301, class_id=4, first_second=1, last_second=30)
    rig.publish(race, length_s=30)
    thread, holder = rig.play_in_background(race, range(51, 71), speed=2)

    for kill in range(3):
        time.sleep(random_moment(1.5, 5.0, f"runner-kill-{kill}"))
        runner.kill()
        runner = rig.runner()
    thread.join(timeout=TIMEOUT)
    result = holder["result"]
    assert (result.sent, result.lost) == (600, 0)

    assert_exact(rig, race, result.messages, dead_letters=0)
    assert runner.stop() == 0
