"""The embedded endpoint and the runner stopped mid-race (SIGTERM, as Ctrl-C of ``make run`` stops them, and
SIGKILL) and started again while the bikes keep riding: every result, personal best, history object and dead
letter is kept, the runner resumes from its checkpoints, and the race equals the recomputation from the
messages sent (records lost 0, double counts 0)."""

from __future__ import annotations

import signal
import time

import pytest

from processors.local.simulator import RaceSpec
from tests.conftest import wait_until
from tests.reliability.conftest import TIMEOUT, Rig, assert_exact, kill, random_moment

pytestmark = [pytest.mark.e2e, pytest.mark.reliability]


def checkpointed(rig: Rig) -> int:
    """Records the aggregator's checkpoint covers (moto numbers each shard's records from 1)."""
    return sum(int(s["sequenceNumber"] or 0) for s in rig.checkpoint()["shards"].values())


@pytest.mark.parametrize("signum", [signal.SIGKILL], ids=["sigkill"])  # SIGTERM: test_make_run.py
def test_endpoint_and_runner_stopped_mid_race_keep_everything_and_resume(rig: Rig, signum: int):
    # GIVEN a finished race (results, bests, history) and 3 dead letters
    runner = rig.runner()
    done = RaceSpec(race_id=8001, class_id=2, first_second=1, last_second=10)
    rig.publish(done, length_s=10)
    done_messages = rig.play(done, range(1, 11))
    rig.put_bad(3)
    before = assert_exact(rig, done, done_messages, dead_letters=3)

    # AND a race being ridden
    race = RaceSpec(race_id=8002, class_id=3, first_second=1, last_second=30)
    rig.publish(race, length_s=30)
    thread, holder = rig.play_in_background(race, range(21, 36), speed=3)

    # WHEN, at a random moment while the runner works on it, both stop (SIGTERM or SIGKILL)
    wait_until(lambda: rig.aggregated() >= 60, timeout=TIMEOUT, what="part of the race processed", output=rig.output)
    time.sleep(random_moment(0.0, 1.5, f"stop-{signum}"))
    assert thread.is_alive(), "the race should still be running"
    kill(runner.proc, signum)  # type: ignore[arg-type]
    rig.endpoint.signal(signum)
    identity = rig.checkpoint()["identity"]
    resumed_from = checkpointed(rig)

    # AND start again (the bikes' PutRecords retry meanwhile)
    rig.endpoint.start()
    print(f"endpoint restart: {rig.endpoint.started_in:.2f} s")
    assert rig.stored(done, range(1, 11)) == before  # the finished race and the dead letters, as they were
    restarted = rig.runner()
    thread.join(timeout=TIMEOUT)
    result = holder["result"]
    assert result.lost == 0

    # THEN the race is exact (nothing lost, nothing counted twice) and the finished race is unchanged
    assert_exact(rig, race, result.messages, dead_letters=3)
    assert rig.stored(done, range(1, 11)) == before
    # AND the runner resumed from its checkpoint: same stream, and it read only the records after it
    assert rig.checkpoint()["identity"] == identity
    total = rig.stream_records()
    wait_until(
        lambda: checkpointed(rig) == total and rig.aggregated() == total - resumed_from,
        timeout=TIMEOUT,
        what=f"the restarted runner to read the {total - resumed_from} records after its checkpoint",
        output=lambda: f"{rig.status()}\n{rig.checkpoint()}\n{rig.output()}",
    )
    assert restarted.stop() == 0
