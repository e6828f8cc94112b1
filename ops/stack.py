"""Run the whole system in one foreground command (``manage.py runstack``, used by ``make run``).

Each service is a child process in its own process group; Ctrl-C (or SIGTERM) stops them
all, gracefully first, then by force. Children also receive SIGTERM if this process dies
abruptly (Linux parent-death signal), so a second ``make run`` needs no clean-up.

A child that exits on its own (a crash, an OOM kill, someone's ``kill -9``) is started again after
a short pause, as a process supervisor would: every part of the stack resumes from what it keeps
(the endpoint from ``var/aws/``, the runner from its checkpoints, the site from its database, see
README "Reliability"). A child that keeps dying (``MAX_RESTARTS`` exits within
``RESTART_WINDOW_SECONDS``) is a crash loop, not a fault to ride out: then the rest are stopped and
the command fails loudly, with the child's own output above.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger("alleycat.stack")

STOP_GRACE_SECONDS = 10
MAX_RESTARTS = 5
RESTART_WINDOW_SECONDS = 60.0
RESTART_PAUSE_SECONDS = 1.0


def _die_with_parent(nice: int = 0) -> None:  # runs in the child between fork and exec
    os.setsid()
    if nice:
        os.nice(nice)
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


@dataclass
class Service:
    """One child process of the stack."""

    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    ready: Callable[[], bool] | None = None  # poll until true before starting the next service
    ready_timeout: float = 60.0
    oneshot: bool = False  # runs to completion (e.g. bootstrap) before the next service starts
    nice: int = 0  # CPU priority below the others' (``nice``): the AWS stand-ins yield to the web tier


class Stack:
    def __init__(self, services: list[Service], *, cwd: Path, base_env: dict[str, str]):
        self.services = services
        self.cwd = cwd
        self.base_env = base_env
        self.procs: dict[str, subprocess.Popen] = {}
        self.restarts: dict[str, list[float]] = {}  # monotonic times of each service's restarts
        self._stopping = threading.Event()

    def _spawn(self, service: Service) -> subprocess.Popen:
        env = {**self.base_env, **service.env}
        proc = subprocess.Popen(
            service.argv,
            cwd=self.cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            preexec_fn=functools.partial(_die_with_parent, service.nice),  # noqa: PLW1509 - setsid + death signal
            bufsize=1,
            text=True,
            errors="replace",
        )
        threading.Thread(target=self._pump, args=(service.name, proc), daemon=True).start()
        return proc

    @staticmethod
    def _pump(name: str, proc: subprocess.Popen) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write(f"{name:>9} | {line}")
            sys.stdout.flush()

    def start(self) -> None:
        for service in self.services:
            if self._stopping.is_set():
                return
            logger.info("starting %s: %s", service.name, " ".join(service.argv))
            proc = self._spawn(service)
            if service.oneshot:
                code = proc.wait()
                if code != 0:
                    raise RuntimeError(f"{service.name} failed with exit code {code}")
                continue
            self.procs[service.name] = proc
            if service.ready:
                deadline = time.monotonic() + service.ready_timeout
                while not service.ready():
                    if proc.poll() is not None:
                        raise RuntimeError(f"{service.name} exited with code {proc.returncode} while starting")
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"{service.name} was not ready within {service.ready_timeout:.0f} s")
                    time.sleep(0.2)

    def wait(self) -> int:
        """Block until Ctrl-C/SIGTERM, restarting children that exit; returns the exit code for the command."""
        services = {service.name: service for service in self.services}
        while not self._stopping.is_set():
            for name, proc in list(self.procs.items()):
                if proc.poll() is None or self._stopping.is_set():
                    continue
                now = time.monotonic()
                recent = [at for at in self.restarts.get(name, []) if now - at < RESTART_WINDOW_SECONDS]
                if len(recent) >= MAX_RESTARTS:
                    logger.error(
                        "%s exited with code %s, %d times within %.0f s; stopping everything",
                        name,
                        proc.returncode,
                        len(recent) + 1,
                        RESTART_WINDOW_SECONDS,
                    )
                    return 1
                logger.warning("%s exited with code %s; starting it again", name, proc.returncode)
                if self._stopping.wait(RESTART_PAUSE_SECONDS):
                    break
                self.restarts[name] = [*recent, now]
                self.procs[name] = self._spawn(services[name])
            self._stopping.wait(0.5)
        return 0

    def request_stop(self, *_args) -> None:
        self._stopping.set()

    def stop(self) -> None:
        self._stopping.set()
        for name, proc in reversed(list(self.procs.items())):
            if proc.poll() is None:
                logger.info("stopping %s", name)
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for proc in self.procs.values():
            remaining = max(0.1, deadline - time.monotonic())
            try:
                proc.wait(timeout=remaining)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()


def run_stack(services: list[Service], *, cwd: Path, base_env: dict[str, str]) -> int:
    stack = Stack(services, cwd=cwd, base_env=base_env)
    signal.signal(signal.SIGINT, stack.request_stop)
    signal.signal(signal.SIGTERM, stack.request_stop)
    try:
        stack.start()
        code = stack.wait()
    except RuntimeError as error:
        logger.error("%s", error)
        code = 1
    finally:
        stack.stop()
    return code
