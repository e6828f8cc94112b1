"""A function's own process, as a Lambda execution environment is its own sandbox.

Each function of the template runs in a child process of the runner (started on its first
invocation, multiprocessing "spawn"): module-level state (clients, Powertools logger and metrics)
is never shared between functions, a slow function (history writing thousands of items) does not
hold up the others, and the functions run in parallel as they do on AWS. One invocation at a
time per sandbox, as in one Lambda execution environment. An invocation that outlives the
function's Timeout is killed (the sandbox is started again on the next call) and fails like a
Lambda timeout.

Events and responses cross the pipe as JSON, i.e. exactly what a Lambda payload can carry, written
and read with orjson (:func:`to_json`, :func:`from_json`): with the standard library's ``json`` the
runner spent a quarter of its CPU writing events and the aggregator a third of its own reading
them, in a 10,000-racer race. What could differ from ``json`` does not occur in a payload here: an
integer past 64 bits is written by ``json`` instead (orjson refuses it) but would be read back as
a float; NaN is written as ``null``.
The sandbox ignores SIGINT/SIGTERM: the runner decides when to stop (after the batch in
progress) and the sandbox exits when the runner closes the pipe or dies.
"""

from __future__ import annotations

import importlib
import json
import multiprocessing
import os
import signal
import sys
import threading
import traceback
from typing import Any

import orjson

from processors.local.events import LambdaContext

_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME


def to_json(value: Any, *, lenient: bool = False) -> bytes:
    """``value`` as JSON bytes (``json.dumps``'s output, faster); ``lenient``: what JSON cannot hold as ``str()``."""
    try:
        return orjson.dumps(value, default=str if lenient else None, option=_OPTIONS)
    except TypeError:  # an integer past 64 bits, or (not lenient) a value JSON cannot hold: json's answer
        return json.dumps(value, default=str if lenient else None).encode()


def from_json(data: bytes) -> Any:
    return orjson.loads(data)


class FunctionError(Exception):
    """The function raised (``Unhandled``) or timed out; the message is Lambda's errorMessage."""


class _EmfFilter:
    """stdout without Powertools' EMF blobs (one per invocation, for CloudWatch; nobody reads them locally)."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self._dropped = False

    def write(self, text: str) -> int:
        # print() writes the blob and its "\n" in two calls: drop both.
        if text.startswith('{"_aws"') or (self._dropped and text == "\n"):
            self._dropped = text != "\n"
            return len(text)
        self._dropped = False
        return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


def _sandbox_main(conn: Any, module: str, attribute: str, context_args: dict[str, Any]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if os.environ.get("ALLEYCAT_HANDLER_EMF") != "1":
        sys.stdout = _EmfFilter(sys.stdout)  # before the import: Powertools' Logger keeps this stream
    handler = getattr(importlib.import_module(module), attribute)
    while True:
        try:
            data = conn.recv_bytes()
        except (EOFError, OSError):
            return
        try:
            response = handler(from_json(data), LambdaContext(**context_args))
            reply = ["ok", response]
        except BaseException as exc:  # everything a function raises is a function error
            reply = ["error", f"{type(exc).__name__}: {exc}", traceback.format_exc(limit=8)]
        try:
            conn.send_bytes(to_json(reply, lenient=True))
        except (BrokenPipeError, OSError):
            return


class Sandbox:
    """Invoke one function in its own process: ``sandbox(event) -> response``; raises FunctionError."""

    def __init__(self, *, function: str, module: str, attribute: str, region: str, memory_mb: int, timeout: int):
        self.function = function
        self.module = module
        self.attribute = attribute
        self.timeout = timeout
        self.context_args = {
            "function_name": function,
            "region": region,
            "memory_limit_in_mb": memory_mb,
            "timeout_seconds": timeout,
        }
        self._lock = threading.Lock()
        self._proc: Any = None
        self._conn: Any = None
        self._warm = False

    def _start(self) -> None:
        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe()
        self._proc = context.Process(
            target=_sandbox_main,
            args=(child, self.module, self.attribute, self.context_args),
            name=f"lambda-{self.function}",
            daemon=True,
        )
        self._proc.start()
        child.close()
        self._conn = parent
        self._warm = False

    def _discard(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.join(timeout=5)
        if self._conn is not None:
            self._conn.close()
        self._proc = self._conn = None

    def __call__(self, event: dict) -> Any:
        with self._lock:
            if self._proc is None or not self._proc.is_alive():
                self._discard()
                self._start()
            try:
                self._conn.send_bytes(to_json(event))
                # A cold start also imports the handler: allow for it on top of the Timeout.
                if not self._conn.poll(self.timeout + (0 if self._warm else 15)):
                    self._discard()
                    raise FunctionError(f"Task timed out after {self.timeout} seconds")
                reply = from_json(self._conn.recv_bytes())
                self._warm = True
            except (EOFError, BrokenPipeError, ConnectionResetError) as exc:
                self._discard()
                raise FunctionError(f"Runtime exited: {type(exc).__name__}") from exc
        if reply[0] == "ok":
            return reply[1]
        raise FunctionError(f"{reply[1]}\n{reply[2]}")

    @property
    def pid(self) -> int | None:
        """The process id of the function's execution environment (None before its first invocation)."""
        proc = self._proc
        return proc.pid if proc is not None and proc.is_alive() else None

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()  # the sandbox sees EOF and exits
            if self._proc is not None:
                self._proc.join(timeout=5)
                if self._proc.is_alive():
                    self._proc.kill()
            self._proc = self._conn = None
