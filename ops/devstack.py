"""How a plain ``.venv/bin/python manage.py …`` in a fresh shell finds the stack that ``make run`` runs.

``make run`` (``manage.py runstack``) writes two files into ``$ALLEYCAT_VAR_DIR`` (default ``var/``,
git-ignored):

- ``development``: a marker that this checkout is a development machine (kept);
- ``stack.env``: ``KEY=value`` lines with what the stack's children use to reach the embedded AWS
  endpoint: ``AWS_ENDPOINT_URL``, region, the endpoint's dummy credentials (mode 600; removed when
  the stack stops).

``manage.py`` calls :func:`apply` before Django starts (not for ``runstack`` itself, which decides
what to start from the environment as it is):

1. ``DJANGO_DEBUG`` unset and the marker present: development mode (``DJANGO_DEBUG=1``). A deploy
   never has the marker (``var/`` is not in the repository); ``DJANGO_DEBUG=0`` forces production
   mode here too.
2. Development mode and ``AWS_ENDPOINT_URL`` unset: the variables of ``stack.env`` (only those not
   set in the shell); without the file, the embedded endpoint's address and dummy credentials. So a
   development shell never talks to real AWS by accident: with no stack running, a command fails
   with "Could not connect to the endpoint URL: http://127.0.0.1:4566/".

Nothing here imports Django: it runs before the settings exist.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
MARKER = "development"
STACK_ENV = "stack.env"
EMBEDDED_DEFAULTS = {
    "AWS_ENDPOINT_URL": f"http://127.0.0.1:{os.environ.get('ALLEYCAT_AWS_PORT') or 4566}",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
}
# What the stack's children get from the supervisor and a command run by hand needs as well.
STACK_KEYS = ("AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "NO_PROXY")
_FALSE = frozenset({"0", "false", "no", "off", ""})


def var_dir(environ: Mapping[str, str] = os.environ) -> Path:
    return Path(environ.get("ALLEYCAT_VAR_DIR") or BASE_DIR / "var")


def stack_env_write(directory: Path, env: Mapping[str, str]) -> Path:
    """Write the marker and ``stack.env`` (the stack's endpoint and dummy credentials) into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / MARKER).write_text("Written by `make run`: manage.py run by hand defaults to development mode.\n")
    path = directory / STACK_ENV
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text("".join(f"{key}={env[key]}\n" for key in STACK_KEYS if env.get(key)))
    return path


def stack_env_read(directory: Path) -> dict[str, str]:
    try:
        text = (directory / STACK_ENV).read_text()
    except FileNotFoundError:
        return {}
    pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs}


def apply(environ: MutableMapping[str, str] = os.environ) -> str:
    """Fill ``environ`` as described above. Returns what was decided (for tests and messages)."""
    directory = var_dir(environ)
    if "DJANGO_DEBUG" not in environ:
        if not (directory / MARKER).exists():
            return "production"
        environ["DJANGO_DEBUG"] = "1"
    if environ["DJANGO_DEBUG"].strip().lower() in _FALSE:
        return "production"
    if environ.get("AWS_ENDPOINT_URL"):
        return "development, endpoint from the shell"
    stack = stack_env_read(directory)
    for key, value in (stack or EMBEDDED_DEFAULTS).items():
        environ.setdefault(key, value)
    return "development, running stack" if stack else "development, embedded endpoint defaults"
