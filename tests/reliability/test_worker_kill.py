"""The Celery worker SIGKILLed at a random moment while rotations are queued, started again, and beat's next
rotation run: the schedule is whole — no duplicate or overlapping race, at most one active race per class —
and every race that has not passed its settle deadline is published to the pipeline as it is in the
database (the identity the aggregator checks readings against)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import wait_until
from tests.reliability.conftest import REPO, TIMEOUT, Rig, random_moment

pytestmark = [pytest.mark.e2e, pytest.mark.reliability]

SEND_ROTATIONS = "from races.tasks import rotate\nfor _ in range({n}): rotate.delay()"
DUMP_RACES = """
import json
from races.models import Race
print("RACES=" + json.dumps([
    [r.pk, r.race_class_id, r.starts_at.isoformat(), r.ends_at.isoformat(), r.status] for r in Race.objects.all()
]))
"""


def manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


class Worker:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.log = log
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        with self.log.open("a") as handle:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "alleycat_site", "worker", "-l", "INFO", "-c", "1"],
                cwd=REPO,
                env=self.env,
                stdout=handle,
                stderr=subprocess.STDOUT,
            )

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=30)


def test_worker_killed_mid_rotation_leaves_a_whole_schedule(rig: Rig, redis_url: str, tmp_path: Path):
    env = {k: v for k, v in rig.env.items() if k != "DATABASE_URL"}
    env.update({"DJANGO_DEBUG": "1", "DJANGO_SETTINGS_MODULE": "alleycat_site.settings", "REDIS_URL": redis_url})
    env["ALLEYCAT_VAR_DIR"] = str(tmp_path / "site")
    manage(env, "migrate", "-v0")
    manage(env, "seed_demo")  # 6 classes with schedules, one rotation
    worker = Worker(env, tmp_path / "worker.log")
    worker.start()
    try:
        wait_until(lambda: "ready." in worker.text(), timeout=TIMEOUT, what="the worker", output=worker.text)

        # WHEN rotations are queued and the worker is killed at a random moment among them
        manage(env, "shell", "-c", SEND_ROTATIONS.format(n=5))
        time.sleep(random_moment(0.0, 2.0, "worker-kill"))
        worker.kill()
        done_before = worker.text().count("succeeded in")
        print(f"rotations done before the kill: {done_before} of 5")

        # AND it starts again, and beat's next rotation comes
        worker.start()
        manage(env, "shell", "-c", SEND_ROTATIONS.format(n=1))
        wait_until(
            lambda: worker.text().count("succeeded in") > done_before,
            timeout=TIMEOUT,
            what="a rotation after the restart",
            output=worker.text,
        )
    finally:
        if worker.proc is not None and worker.proc.poll() is None:
            worker.kill()

    # THEN the schedule is whole
    out = manage(env, "shell", "-c", DUMP_RACES)
    races = json.loads(next(line for line in out.splitlines() if line.startswith("RACES="))[len("RACES=") :])
    by_class: dict[int, list] = {}
    for pk, class_id, starts, ends, status in races:
        by_class.setdefault(class_id, []).append(
            (datetime.fromisoformat(starts), datetime.fromisoformat(ends), status, pk)
        )
    assert len(by_class) == 6
    for rows in by_class.values():
        rows.sort()
        assert len({start for start, *_ in rows}) == len(rows), "a duplicate race"
        assert all(a[1] <= b[0] for a, b in zip(rows, rows[1:], strict=False)), "overlapping races"
        assert [status for *_, status, _pk in rows].count("active") <= 1
    # AND the pipeline knows every race that has not settled, as the database has it
    table = rig.table()
    now = datetime.now().astimezone()
    for rows in by_class.values():
        for starts, ends, status, pk in rows:
            if ends < now - timedelta(minutes=2):
                continue
            identity = table.race_identity(pk)
            assert identity is not None, f"race {pk} ({status}) is not published"
            assert (identity.starts_at_ms, identity.ends_at_ms) == (
                int(starts.timestamp() * 1000),
                int(ends.timestamp() * 1000),
            )
            assert identity.cancelled == (status == "cancelled")
