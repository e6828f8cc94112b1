"""Credential files are owner-only from their first byte, whatever the umask or an older file's mode."""

from __future__ import annotations

import os
import stat

import pytest

from alleycat_site import credentials


def test_created_with_mode_600_before_anything_is_written(tmp_path, monkeypatch):
    modes_when_written: list[int] = []
    real_fdopen = os.fdopen

    def watching_fdopen(fd, *args, **kwargs):
        modes_when_written.append(stat.S_IMODE(os.fstat(fd).st_mode))
        return real_fdopen(fd, *args, **kwargs)

    monkeypatch.setattr(os, "fdopen", watching_fdopen)
    old_umask = os.umask(0)  # the most permissive umask: the mode passed to open() alone decides
    try:
        credentials.credentials_file_write(path=tmp_path / "var" / "c.txt", username="admin", password="pw")
    finally:
        os.umask(old_umask)
    assert modes_when_written == [0o600]
    path = tmp_path / "var" / "c.txt"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == "username: admin\npassword: pw\n"
    assert [p.name for p in path.parent.iterdir()] == ["c.txt"]  # no temporary file left


def test_a_world_readable_older_file_is_replaced_not_rewritten(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("old")
    path.chmod(0o644)
    credentials.credentials_file_write(path=path, username="rider", password="new")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "new" in path.read_text()


def test_a_symlink_planted_at_the_temporary_name_is_not_followed(tmp_path, monkeypatch):
    target = tmp_path / "elsewhere"
    monkeypatch.setattr(credentials.secrets, "token_hex", lambda n: "fixed")
    (tmp_path / ".c.txt.fixed.tmp").symlink_to(target)
    with pytest.raises(FileExistsError):
        credentials.credentials_file_write(path=tmp_path / "c.txt", username="a", password="b")
    assert not target.exists()
