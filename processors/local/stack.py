"""The local pipeline's processes for ``make run`` (called by ``ops/management/commands/runstack.py``).

:func:`local_pipeline_services` returns plain dicts, so that ``processors/`` stays free of Django:
the embedded AWS endpoint (unless ``AWS_ENDPOINT_URL`` is already set, e.g. to LocalStack), a
one-shot bootstrap of the stream, table, buckets and queue, and the event-source runner.

``base_env`` is the environment of every child of the stack; the embedded defaults are added to
it when unset: ``AWS_ENDPOINT_URL=http://127.0.0.1:<ALLEYCAT_AWS_PORT or 4566>``, region
us-east-1, dummy credentials, and a 10 s Firehose buffer so that the "All time" history fills
within seconds in a demo (the template's 60 s applies on AWS).
"""

from __future__ import annotations

import os

from processors.local.endpoint import DEFAULT_PORT, HOST
from processors.local.runner.config import PARAMETER_ENV

DEMO_FIREHOSE_BUFFER_SECONDS = "10"


def local_pipeline_services(*, python: str, base_env: dict[str, str]) -> list[dict]:
    """[moto (unless AWS_ENDPOINT_URL is set), bootstrap (oneshot), runner]; fills ``base_env``'s defaults."""
    services: list[dict] = []
    if "AWS_ENDPOINT_URL" not in base_env:
        port = base_env.get("ALLEYCAT_AWS_PORT") or str(DEFAULT_PORT)
        endpoint = f"http://{HOST}:{port}"
        base_env["AWS_ENDPOINT_URL"] = endpoint
        base_env.setdefault("AWS_ACCESS_KEY_ID", "testing")
        base_env.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
        # Its state is kept under var/aws (endpoint/persistence.py); ALLEYCAT_AWS_STATE_DIR= (empty) keeps it in memory.
        var = base_env.get("ALLEYCAT_VAR_DIR") or "var"
        state = base_env.get("ALLEYCAT_AWS_STATE_DIR", os.path.join(var, "aws"))
        services.append(
            {
                "name": "aws",
                "argv": [python, "-m", "processors.local.endpoint", port],
                "env": {"ALLEYCAT_AWS_STATE_DIR": state},
                "ready_url": f"{endpoint}/moto-api/",
            }
        )
    base_env.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    base_env.setdefault("ALLEYCAT_FIREHOSE_BUFFER_SECONDS", DEMO_FIREHOSE_BUFFER_SECONDS)
    base_env.setdefault("NO_PROXY", "127.0.0.1,localhost")
    # The shared names (ALLEYCAT_STREAM...) override the template's defaults, as in the runner.
    parameters = [
        argument
        for parameter, name in PARAMETER_ENV.items()
        if base_env.get(name)
        for argument in ("--parameter", f"{parameter}={base_env[name]}")
    ]
    services.append(
        {"name": "bootstrap", "argv": [python, "-m", "processors.local.bootstrap", *parameters], "oneshot": True}
    )
    services.append({"name": "runner", "argv": [python, "-m", "processors.local.runner"]})
    return services
