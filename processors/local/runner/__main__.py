"""``python -m processors.local.runner``: bootstrap, then run every event source until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

from processors.local.runner import __doc__ as package_doc
from processors.local.runner.config import template_parameters_from_env
from processors.local.runner.core import Runner, configure_environment
from processors.local.template import load_local_settings

logger = logging.getLogger("processors.local.runner")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m processors.local.runner", description=(package_doc or "").split("\n")[0]
    )
    parser.add_argument("--template", default=None, help="SAM template (default: infra/template.yaml)")
    parser.add_argument("--parameter", action="append", default=[], metavar="NAME=VALUE")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    for noisy in ("botocore", "boto3", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    from processors.local.bootstrap import bootstrap

    parameters = {**template_parameters_from_env(), **dict(item.split("=", 1) for item in args.parameter)}
    settings = load_local_settings(args.template, parameters=parameters)
    resources = bootstrap(None, settings)
    configure_environment(settings, resources)
    runner = Runner(settings, resources=resources)

    def request_stop(signum: int, _frame: Any) -> None:
        if runner.stop.is_set():
            os._exit(130)  # a second Ctrl-C: do not wait for the batch in progress
        logger.info("signal %s: stopping after the batches in progress", signal.Signals(signum).name)
        runner.stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    runner.run_until_stopped()
    return 0


if __name__ == "__main__":
    sys.exit(main())
