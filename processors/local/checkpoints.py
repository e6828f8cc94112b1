"""Durable checkpoints of the local runner: one small JSON file per consumer, written atomically.

A checkpoint remembers, per shard, the sequence number of the last record whose processing is
complete (and whether the shard has been read to its end). It also stores the identity of the
stream it belongs to (creation time / stream label), so that a checkpoint of a stream that no
longer exists (an endpoint whose state was wiped or kept in memory) is ignored instead of skipping
the first records of the new stream. The embedded endpoint of ``make run`` keeps its state with the
same creation times across restarts (``processors/local/endpoint/persistence.py``).
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from pathlib import Path
from typing import Any


def var_dir() -> Path:
    return Path(os.environ.get("ALLEYCAT_VAR_DIR") or "var")


def write_json_atomically(path: Path, data: Any) -> None:
    """Write JSON so that a reader (or a crash) sees either the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, separators=(",", ":"), sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


class CheckpointStore:
    """Checkpoints of one consumer (``aggregator-BikeStream``...) under ``<var>/checkpoints/``."""

    def __init__(self, name: str, directory: Path | None = None) -> None:
        self.path = (directory or var_dir() / "checkpoints") / f"{name}.json"
        self._lock = threading.Lock()

    def load(self, identity: str) -> dict[str, Any]:
        """``{"shards": {shard_id: {"sequenceNumber": str | None, "finished": bool}}, ...extra}`` or empty."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError):
            return {"shards": {}}
        if data.get("identity") != identity:
            return {"shards": {}}
        data.setdefault("shards", {})
        return data

    def save(self, identity: str, shards: dict[str, dict[str, Any]], **extra: Any) -> None:
        with self._lock:
            write_json_atomically(self.path, {"identity": identity, "shards": shards, **extra})
