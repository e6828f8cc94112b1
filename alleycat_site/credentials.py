"""Generated passwords of the demo accounts, kept once in a git-ignored file under var/."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def password_generate() -> str:
    return secrets.token_urlsafe(12)


def credentials_file_write(*, path: Path, username: str, password: str) -> None:
    """Write ``username``/``password`` to ``path``, readable by the owner only (mode 600) from the first byte.

    The content goes to a new file created with mode 600 (O_EXCL: never someone else's file or link), then
    replaces ``path`` in one rename: no moment where the password sits in a file others can read.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(f"username: {username}\npassword: {password}\n")
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
