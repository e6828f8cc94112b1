"""``python -m processors.local.endpoint [PORT]``: the fixes, the speedups, then moto's server."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

from processors.local.endpoint import DEFAULT_PORT, HOST, fixes, persistence, speedups


def _exit_after_grace(_signum: int, _frame: Any) -> None:
    # ``make run`` stops every process at once: keep answering for a moment so that the runner
    # and the simulator finish the calls in progress (and checkpoint) instead of failing them.
    grace = float(os.environ.get("ALLEYCAT_AWS_STOP_GRACE_SECONDS") or 3)
    threading.Timer(grace, os._exit, args=(0,)).start()


M_MMAP_THRESHOLD = -3  # mallopt's parameter (glibc's malloc.h)
MMAP_THRESHOLD_BYTES = 128 * 1024  # glibc's initial value, kept fixed
TRIM_EVERY_SECONDS = 60.0


def release_freed_memory(every: float = TRIM_EVERY_SECONDS) -> bool:
    """With glibc: allocations of 128 KB and more always from mmap, and free heap pages handed back
    to the system every ``every`` seconds. Whether it applied (not on another C library).

    The endpoint's live set is bounded by the retention (``fixes``), but its resident size was not:
    1,023 MB after 15 minutes of 1,000 racers, 1,597 MB after 30, while what it holds (15 minutes of
    records, the tables, the buckets) grows by a few MB a minute. glibc raises its mmap threshold
    after big blocks are freed (the table-stream images, ~190 KB each, and big responses), so later
    ones are carved from the heaps, and the freed space between long-lived small objects is kept.
    A fixed threshold returns every big block to the system when it is freed; ``malloc_trim``
    releases the free pages left inside the heaps. Measured with both (``bench/bench_memory.py``,
    1,000 racers): 391 MB at 5 minutes, 1,011 at 15, 1,131 at 26 (~11 MB a minute once the
    retention is full, of which ~5 is what the stack keeps: delivery objects, results, per-second
    items); without, 394, 1,023 and 1,597 at 30 (38 MB a minute).
    """
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt, malloc_trim = libc.mallopt, libc.malloc_trim
    except (OSError, TypeError, AttributeError):
        return False
    if not mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES):
        return False

    def trim() -> None:
        while True:
            time.sleep(every)
            malloc_trim(0)

    threading.Thread(target=trim, name="malloc-trim", daemon=True).start()
    return True


def main(argv: Sequence[str] | None = None) -> int:
    args = list(argv if argv is not None else sys.argv[1:])
    port = int(args[0] if args else os.environ.get("ALLEYCAT_AWS_PORT") or DEFAULT_PORT)
    # One access-log line per request would drown the console of ``make run``.
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    release_freed_memory()
    fixes.apply()
    speedups.apply()

    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import run_simple

    os.environ.setdefault("MOTO_PORT", str(port))
    signal.signal(signal.SIGTERM, _exit_after_grace)
    app: Any = DomainDispatcherApplication(create_backend_app)
    directory = persistence.state_directory()
    if directory is not None:  # make run: the state survives a stop (persistence.py)
        fixes.keep_object_bodies_on_disk(directory / "bodies")
        app = persistence.PersistentApp(app, directory)
        app.restore()
    print(f"embedded AWS endpoint (moto) on http://{HOST}:{port}", flush=True)
    run_simple(HOST, port, app, threaded=True, request_handler=MotoRequestHandler)
    return 0


if __name__ == "__main__":
    sys.exit(main())
