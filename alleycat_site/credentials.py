"""Generated passwords of the demo accounts, kept once in a git-ignored file under var/."""

from __future__ import annotations

import secrets
from pathlib import Path


def password_generate() -> str:
    return secrets.token_urlsafe(12)


def credentials_file_write(*, path: Path, username: str, password: str) -> None:
    """Write ``username``/``password`` to ``path`` readable by the owner only (mode 600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"username: {username}\npassword: {password}\n")
    path.chmod(0o600)
