"""The figures of each event source, and where the runner writes them (read by the pipeline page)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from processors.local.checkpoints import var_dir


def status_file_path() -> Path:
    configured = os.environ.get("ALLEYCAT_PIPELINE_STATUS_FILE")
    return Path(configured) if configured else var_dir() / "pipeline-status.json"


@dataclass
class SourceStats:
    """Figures of one event source, read by the reporter thread (plain ints: no lock needed under the GIL)."""

    name: str
    function: str
    kind: str
    source: str
    shards: int = 0
    lag_ms: int = 0
    records: int = 0
    invocations: int = 0
    errors: int = 0
    dead_letters: int = 0
    last_error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    _last_records: int = 0
    _last_at: float = field(default_factory=time.monotonic)
    _rate: float = 0.0

    def error(self, exc: BaseException | str) -> None:
        self.errors += 1
        self.last_error = (exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}")[:500]

    def snapshot(self) -> dict[str, Any]:
        now = time.monotonic()
        elapsed = now - self._last_at
        if elapsed >= 0.5:
            self._rate = (self.records - self._last_records) / elapsed
            self._last_records, self._last_at = self.records, now
        return {
            "name": self.name,
            "function": self.function,
            "kind": self.kind,
            "source": self.source,
            "shards": self.shards,
            "lagMs": self.lag_ms,
            "recordsPerSecond": round(self._rate, 1),
            "records": self.records,
            "invocations": self.invocations,
            "errors": self.errors,
            "deadLetters": self.dead_letters,
            "lastError": self.last_error,
            **self.extra,
        }
