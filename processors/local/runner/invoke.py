"""Calling a handler given as a Python function, in this process (tests pass their own functions)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import threading
from collections.abc import Callable
from typing import Any

from processors.local import events
from processors.local.template import FunctionSettings

Handler = Callable[[dict, Any], Any]  # a handler as Lambda calls it: (event, context)
Invoke = Callable[[dict], Any]  # what a source calls with an event: an Invoker or a Sandbox


class Invoker:
    """A fresh context per invocation and a JSON round trip of event and response, as Lambda does.

    Invocations are serialised: functions in one process share module-level objects. The
    template's real handlers run in their own processes instead (:mod:`processors.local.sandbox`).
    """

    _lock = threading.Lock()

    def __init__(self, function: FunctionSettings, handler: Handler, region: str) -> None:
        self.function = function
        self.handler = handler
        self.region = region

    @staticmethod
    def _metrics_sink() -> Any:
        # Powertools prints one EMF blob per invocation (CloudWatch's metric format) with print();
        # locally nobody collects them, so they are dropped unless ALLEYCAT_HANDLER_EMF=1.
        # Handler logs are unaffected: their handler keeps the stream it was created with.
        return sys.stdout if os.environ.get("ALLEYCAT_HANDLER_EMF") == "1" else io.StringIO()

    def __call__(self, event: dict) -> Any:
        payload = json.loads(json.dumps(event))  # exactly what a JSON-serialised Lambda payload gives
        context = events.LambdaContext(
            function_name=self.function.key,
            region=self.region,
            memory_limit_in_mb=self.function.memory_mb,
            timeout_seconds=self.function.timeout_seconds,
        )
        with self._lock, contextlib.redirect_stdout(self._metrics_sink()):
            response = self.handler(payload, context)
        return json.loads(json.dumps(response)) if response is not None else None
