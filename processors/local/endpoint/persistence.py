"""The embedded endpoint's state on disk: a write-ahead journal of requests plus snapshots of moto.

moto keeps everything in memory; without this a Ctrl-C of ``make run`` loses every result, best,
history object and dead letter. :class:`PersistentApp` wraps moto's WSGI application:

- **Journal.** Every request that may change state (anything but Get*/Describe*/List*/Query/Scan/
  BatchGet*/Head*, S3 GET/HEAD) is appended to ``journal-<generation>.log`` *before* moto applies it,
  under one lock that also covers moto's handling of it, so the journal's order is the order in which
  moto applied the requests and nothing a reader can see is missing from the journal. ``os.write``
  puts the entry in the OS page cache before the answer leaves: a killed process (Ctrl-C, SIGKILL)
  loses nothing. (A power cut may: the journal is not fsynced per request.) Reads take no lock.
- **Determinism.** A replay must rebuild the same state: each entry carries its wall-clock time and
  runs again at that time (moto's clock is stopped at the entry's time on the request's thread, live
  and in the replay alike), so stream creation times, the table stream's label (its
  ARN), record arrival times and SQS visibility are as they were; moto's random source
  (``mock_random``: SQS message ids and receipt handles, stream event ids) is seeded per entry from
  its sequence number, on the thread of the request only. Kinesis and table-stream sequence numbers
  are counters, the same when the requests come in the same order. A long-polling ReceiveMessage is
  journaled as short polls (WaitTimeSeconds 0) repeated until a message or the wait's end.
- **Snapshots (compaction).** When the journal has grown (``ALLEYCAT_AWS_JOURNAL_COMPACT_MB``, default
  16, and at least ``ALLEYCAT_AWS_JOURNAL_COMPACT_RATIO``, default 0.1, of the last snapshot's size; or
  1 MB after ``ALLEYCAT_AWS_JOURNAL_COMPACT_SECONDS``, default 300), a new journal generation is
  opened under the lock and a forked child pickles moto's backends as they were at that instant into
  ``snapshot.pickle`` (written aside, fsynced, renamed); the older journals are then deleted. The
  server does not wait for the pickling (copy-on-write, as Redis's BGSAVE). The ratio keeps the cost
  proportional, as Redis's ``auto-aof-rewrite-percentage`` does: at 1,000 racers the state is ~600 MB
  (15 minutes of stream records) and the journal grows ~0.85 MB/s, so a fixed 16 MB had a 600 MB
  snapshot written every ~20 s (a core busy a quarter of the time, ~30 MB/s to disk); a restart
  replays at most the journal since the last snapshot.
- **Start.** The snapshot is loaded, the journals from its generation on are replayed in order (an
  entry cut short by a kill is ignored: its request got no answer), and a snapshot is started at once
  (the endpoint serves meanwhile).

Not kept: table-stream shard iterators (an old iterator fails and the runner re-reads from its
checkpoint, as with an expired one). The state belongs to the pinned moto version: a snapshot of
another version is moved aside and the endpoint starts empty (a warning says so).
"""

from __future__ import annotations

import datetime
import io
import json
import logging
import os
import pickle
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

logger = logging.getLogger(__name__)

SNAPSHOT = "snapshot.pickle"
JOURNAL_PREFIX = "journal-"
FORMAT = 1
_HEADER = struct.Struct("<I")
READ_PREFIXES = ("Get", "Describe", "List", "Query", "Scan", "BatchGet", "TransactGet", "Head")
# Backends never snapshotted: the table-stream service only holds iterators (ephemeral, unbounded).
EPHEMERAL_BACKENDS = frozenset({("moto.dynamodbstreams.models", "dynamodbstreams_backends")})
WSGI_KEYS = frozenset(
    {"REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "CONTENT_TYPE", "SERVER_NAME", "SERVER_PORT"}
    | {"SERVER_PROTOCOL", "REQUEST_URI", "RAW_URI", "REMOTE_ADDR", "wsgi.url_scheme"}
)

_thread = threading.local()


def _float_env(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value else default


# -- what a request does


def action_of(environ: dict[str, Any], body: bytes) -> str | None:
    """The API action of a JSON- or query-protocol request (``PutRecords``, ``SendMessage``...), else None."""
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        return str(target).rsplit(".", 1)[-1]
    query = parse_qs(environ.get("QUERY_STRING") or "")
    if "Action" in query:
        return query["Action"][0]
    if str(environ.get("CONTENT_TYPE") or "").startswith("application/x-www-form-urlencoded") and body:
        form = parse_qs(body.decode("utf-8", "replace"))
        if "Action" in form:
            return form["Action"][0]
    return None


def is_mutating(environ: dict[str, Any], body: bytes) -> bool:
    path = str(environ.get("PATH_INFO") or "")
    method = str(environ.get("REQUEST_METHOD") or "GET").upper()
    if path.startswith("/moto-api"):
        return method == "POST" and path.rstrip("/") == "/moto-api/reset"
    action = action_of(environ, body)
    if action is not None:
        return not action.startswith(READ_PREFIXES)
    return method not in ("GET", "HEAD", "OPTIONS")


# -- moto's random source, seeded per journaled request


def install_thread_random() -> None:
    """Let a thread give moto's ``mock_random`` a generator of its own (:func:`seeded`)."""
    from moto.moto_api._internal import mock_random

    base = type(mock_random)
    if getattr(base, "_alleycat_thread_random", False):
        return

    class ThreadRandom(base):  # type: ignore[valid-type, misc]
        _alleycat_thread_random = True

        def random(self) -> float:
            own = getattr(_thread, "rng", None)
            return own.random() if own is not None else super().random()

        def getrandbits(self, k: int) -> int:
            own = getattr(_thread, "rng", None)
            return own.getrandbits(k) if own is not None else super().getrandbits(k)

    mock_random.__class__ = ThreadRandom


def install_thread_clock() -> None:
    """Let a thread set moto's clock (``moto.core.utils.utcnow``, behind ``unix_time`` too) for itself.

    moto takes every time of the services used here from ``utcnow`` (S3 bucket creation dates aside);
    modules that imported it by name get the thread-aware one as well.
    """
    from moto.core import utils

    original = utils.utcnow
    if getattr(original, "_alleycat_thread_clock", False):
        return

    def utcnow() -> datetime.datetime:
        frozen = getattr(_thread, "now", None)
        return frozen if frozen is not None else original()

    utcnow._alleycat_thread_clock = True  # type: ignore[attr-defined]
    for name, module in list(sys.modules.items()):
        if (name == "moto" or name.startswith("moto.")) and getattr(module, "utcnow", None) is original:
            module.utcnow = utcnow  # type: ignore[attr-defined]


class seeded:  # noqa: N801 - a context manager named for what it does
    """On this thread: moto's random source seeded with ``seed``, moto's clock stopped at ``when``."""

    def __init__(self, seed: int, when: float) -> None:
        import random

        self.rng = random.Random(seed)
        self.now = datetime.datetime.fromtimestamp(when, datetime.UTC).replace(tzinfo=None)

    def __enter__(self) -> None:
        _thread.rng = self.rng
        _thread.now = self.now

    def __exit__(self, *exc: object) -> None:
        _thread.rng = None
        _thread.now = None


# -- moto's state


def _backend_dicts() -> Iterator[tuple[tuple[str, str], Any]]:
    from moto.core.base_backend import BackendDict

    for module_name, module in list(sys.modules.items()):
        if not module_name.startswith("moto.") or module is None:
            continue
        for attribute, value in list(vars(module).items()):
            if isinstance(value, BackendDict) and len(value) and (module_name, attribute) not in EPHEMERAL_BACKENDS:
                yield (module_name, attribute), value


def _pickler(handle: Any) -> pickle.Pickler:
    import copyreg

    pickler = pickle.Pickler(handle, protocol=pickle.HIGHEST_PROTOCOL)
    table = copyreg.dispatch_table.copy()
    # moto's SQS queues hold a Condition (a lock): a fresh one on load.
    table[type(threading.Lock())] = lambda _lock: (threading.Lock, ())
    table[type(threading.RLock())] = lambda _lock: (threading.RLock, ())
    pickler.dispatch_table = table
    return pickler


def dump_state(handle: Any, *, generation: int, next_seq: int) -> None:
    seen: dict[int, tuple[str, str]] = {}
    backends: dict[tuple[str, str], dict] = {}
    for key, value in _backend_dicts():
        if id(value) in seen:  # the same BackendDict under two names
            continue
        seen[id(value)] = key
        backends[key] = dict(value)
    state = {
        "format": FORMAT,
        "moto": version("moto"),
        "generation": generation,
        "next_seq": next_seq,
        "backends": backends,
    }
    _pickler(handle).dump(state)


def load_state(state: dict[str, Any]) -> None:
    import importlib

    for (module_name, attribute), accounts in state["backends"].items():
        target = getattr(importlib.import_module(module_name), attribute)
        target.clear()
        target.update(accounts)


# -- the journal


def read_journal(path: Path) -> Iterator[tuple[int, float, dict[str, Any], bytes]]:
    data = path.read_bytes()
    offset = 0
    while offset + _HEADER.size <= len(data):
        (size,) = _HEADER.unpack_from(data, offset)
        end = offset + _HEADER.size + size
        if end > len(data):
            logger.warning(
                "%s: last entry cut short (%d bytes), its request got no answer", path.name, len(data) - offset
            )
            return
        yield pickle.loads(data[offset + _HEADER.size : end])
        offset = end


def _journals(directory: Path) -> list[tuple[int, Path]]:
    found = []
    for path in directory.glob(f"{JOURNAL_PREFIX}*.log"):
        try:
            found.append((int(path.stem[len(JOURNAL_PREFIX) :]), path))
        except ValueError:
            continue
    return sorted(found)


def _read_body(environ: dict[str, Any]) -> bytes:
    stream = environ.get("wsgi.input")
    if stream is None:
        return b""
    length = environ.get("CONTENT_LENGTH")
    if length:
        return stream.read(int(length))
    if environ.get("wsgi.input_terminated"):
        return stream.read()
    return b""


StartResponse = Callable[..., Any]


class PersistentApp:
    """moto's WSGI application with its state kept under ``directory`` (see the module's docstring)."""

    def __init__(self, app: Callable[[dict[str, Any], StartResponse], Iterable[bytes]], directory: Path) -> None:
        self.app = app
        self.directory = directory
        self.lock = threading.Lock()
        self.generation = 0
        self.next_seq = 0
        self._fd: int | None = None
        self._journal_bytes = 0
        self._journal_opened = time.monotonic()
        self._compacting = False
        self.compact_bytes = int(_float_env("ALLEYCAT_AWS_JOURNAL_COMPACT_MB", 16) * 1024 * 1024)
        self.compact_seconds = _float_env("ALLEYCAT_AWS_JOURNAL_COMPACT_SECONDS", 300)
        self.compact_ratio = _float_env("ALLEYCAT_AWS_JOURNAL_COMPACT_RATIO", 0.1)
        self.snapshot_bytes = 0  # the size of the last snapshot written or loaded
        self.replayed = 0
        install_thread_random()
        install_thread_clock()

    # -- start

    def restore(self) -> dict[str, Any]:
        """Load the snapshot, replay the journals, snapshot again; returns figures for the log."""
        started = time.monotonic()
        self.directory.mkdir(parents=True, exist_ok=True)
        os.chmod(self.directory, 0o700)
        snapshot = self.directory / SNAPSHOT
        first_generation = 0
        if snapshot.exists():
            with snapshot.open("rb") as handle:
                state = pickle.load(handle)
            if state.get("format") != FORMAT or state.get("moto") != version("moto"):
                aside = self.directory.with_name(f"{self.directory.name}-discarded-{int(time.time())}")
                logger.warning("state in %s is from moto %s: moved to %s", self.directory, state.get("moto"), aside)
                self.directory.rename(aside)
                self.directory.mkdir(parents=True)
            else:
                load_state(state)
                self.snapshot_bytes = snapshot.stat().st_size
                first_generation = state["generation"]
                self.next_seq = state["next_seq"]
        loaded = time.monotonic()
        journals = _journals(self.directory)
        for generation, path in journals:
            if generation < first_generation:
                continue
            for seq, when, environ, body in read_journal(path):
                if seq < self.next_seq:
                    continue
                self._apply(seq, when, environ, body, lambda *_args: None)
                self.next_seq = seq + 1
                self.replayed += 1
        for stale in self.directory.glob(f".{SNAPSHOT}.*"):  # a snapshot cut short by a stop
            stale.unlink(missing_ok=True)
        self.generation = max([first_generation, *(generation for generation, _ in journals)])
        # The state as of now goes to a new snapshot while the endpoint already serves (a forked child).
        self._snapshot(wait=False)
        figures = {
            "snapshot_s": round(loaded - started, 3),
            "replayed": self.replayed,
            "total_s": round(time.monotonic() - started, 3),
        }
        logger.warning("embedded endpoint state restored from %s: %s", self.directory, json.dumps(figures))
        return figures

    # -- serving

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        body = _read_body(environ)
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        if not is_mutating(environ, body):
            return self.app(environ, start_response)
        wait = self._long_poll_seconds(environ, body)
        if wait is None:
            return self._journaled(environ, body, start_response)
        # A long poll: short polls (journaled) until a message comes or the wait is over.
        short = self._short_poll_body(body)
        deadline = time.monotonic() + wait
        while True:
            answer: list[Any] = []

            def capture(status: str, headers: list, exc_info: Any = None, answer: list = answer) -> Any:
                answer[:] = [status, headers, exc_info]
                return lambda _data: None

            chunks = list(self._journaled(dict(environ, **{"wsgi.input": io.BytesIO(short)}), short, capture))
            if b'"Messages"' in b"".join(chunks) or time.monotonic() >= deadline:
                start_response(answer[0], answer[1])
                return chunks
            time.sleep(0.2)

    @staticmethod
    def _long_poll_seconds(environ: dict[str, Any], body: bytes) -> float | None:
        if environ.get("HTTP_X_AMZ_TARGET") != "AmazonSQS.ReceiveMessage":
            return None
        try:
            wait = float(json.loads(body or b"{}").get("WaitTimeSeconds") or 0)
        except (ValueError, AttributeError):
            return None
        return wait if wait > 0 else None

    @staticmethod
    def _short_poll_body(body: bytes) -> bytes:
        payload = json.loads(body)
        payload["WaitTimeSeconds"] = 0
        return json.dumps(payload).encode()

    def _journaled(self, environ: dict[str, Any], body: bytes, start_response: StartResponse) -> list[bytes]:
        kept = {key: value for key, value in environ.items() if key.startswith("HTTP_") or key in WSGI_KEYS}
        with self.lock:
            seq = self.next_seq
            self.next_seq += 1
            when = time.time()
            self._append(pickle.dumps((seq, when, kept, body), protocol=pickle.HIGHEST_PROTOCOL))
            chunks = self._apply(seq, when, environ, body, start_response)
            due = self._compaction_due()
            if due:
                self._snapshot(wait=False)
        return chunks

    def _apply(
        self, seq: int, when: float, environ: dict[str, Any], body: bytes, start_response: StartResponse
    ) -> list[bytes]:
        environ = dict(environ)
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        environ.setdefault("wsgi.errors", sys.stderr)
        environ.setdefault("wsgi.version", (1, 0))
        environ.setdefault("wsgi.multithread", True)
        environ.setdefault("wsgi.multiprocess", False)
        environ.setdefault("wsgi.run_once", False)
        environ.setdefault("wsgi.url_scheme", "http")
        with seeded(seq, when):
            result = self.app(environ, start_response)
            try:
                return list(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()

    # -- files

    def _open_journal(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
        path = self.directory / f"{JOURNAL_PREFIX}{self.generation}.log"
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._journal_bytes = 0
        self._journal_opened = time.monotonic()

    def _append(self, payload: bytes) -> None:
        assert self._fd is not None
        data = memoryview(_HEADER.pack(len(payload)) + payload)
        while data:
            written = os.write(self._fd, data)
            data = data[written:]
        self._journal_bytes += _HEADER.size + len(payload)

    def _compaction_due(self) -> bool:
        if self._compacting or not self._journal_bytes:
            return False
        if self._journal_bytes >= max(self.compact_bytes, self.compact_ratio * self.snapshot_bytes):
            return True
        return self._journal_bytes >= 1024 * 1024 and time.monotonic() - self._journal_opened >= self.compact_seconds

    def _snapshot(self, *, wait: bool) -> None:
        """Open the next journal generation and write the state as of now (a forked child pickles it)."""
        self._compacting = True
        self.generation += 1
        self._open_journal()
        generation, next_seq = self.generation, self.next_seq
        pid = os.fork()
        if pid == 0:  # the child: a frozen copy of the state
            code = 1
            try:
                path = self.directory / SNAPSHOT
                tmp = path.with_name(f".{SNAPSHOT}.{os.getpid()}")
                with tmp.open("wb") as handle:
                    dump_state(handle, generation=generation, next_seq=next_seq)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, path)
                code = 0
            except BaseException:
                logger.exception("snapshot of the embedded endpoint's state failed")
            finally:
                os._exit(code)

        def reap() -> None:
            _, status = os.waitpid(pid, 0)
            if os.waitstatus_to_exitcode(status) == 0:
                self.snapshot_bytes = (self.directory / SNAPSHOT).stat().st_size
                for older, path in _journals(self.directory):
                    if older < generation:
                        path.unlink(missing_ok=True)
            self._compacting = False

        if wait:
            reap()
        else:
            threading.Thread(target=reap, name="snapshot-reaper", daemon=True).start()


def state_directory() -> Path | None:
    """Where the endpoint keeps its state: ``ALLEYCAT_AWS_STATE_DIR`` (unset or empty: in memory only)."""
    value = os.environ.get("ALLEYCAT_AWS_STATE_DIR")
    return Path(value) if value else None
