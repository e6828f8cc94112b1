"""``python -m processors.local.endpoint [PORT]``: the fixes, the speedups, then moto's server."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

from processors.local.endpoint import DEFAULT_PORT, HOST, fixes, persistence, speedups


def _exit_after_grace(_signum: int, _frame: Any) -> None:
    # ``make run`` stops every process at once: keep answering for a moment so that the runner
    # and the simulator finish the calls in progress (and checkpoint) instead of failing them.
    grace = float(os.environ.get("ALLEYCAT_AWS_STOP_GRACE_SECONDS") or 3)
    threading.Timer(grace, os._exit, args=(0,)).start()


def main(argv: Sequence[str] | None = None) -> int:
    args = list(argv if argv is not None else sys.argv[1:])
    port = int(args[0] if args else os.environ.get("ALLEYCAT_AWS_PORT") or DEFAULT_PORT)
    # One access-log line per request would drown the console of ``make run``.
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    fixes.apply()
    speedups.apply()

    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import run_simple

    os.environ.setdefault("MOTO_PORT", str(port))
    signal.signal(signal.SIGTERM, _exit_after_grace)
    app: Any = DomainDispatcherApplication(create_backend_app)
    directory = persistence.state_directory()
    if directory is not None:  # make run: the state survives a stop (persistence.py)
        app = persistence.PersistentApp(app, directory)
        app.restore()
    print(f"embedded AWS endpoint (moto) on http://{HOST}:{port}", flush=True)
    run_simple(HOST, port, app, threaded=True, request_handler=MotoRequestHandler)
    return 0


if __name__ == "__main__":
    sys.exit(main())
