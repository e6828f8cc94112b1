"""Configuration is read from the environment once, with the names from docs/contracts.md."""

from __future__ import annotations

import pytest

from processors.config import DEFAULT_TABLE, get_config


def test_defaults_for_a_fresh_clone(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ALLEYCAT_TABLE", "ALLEYCAT_DEAD_LETTER_QUEUE_URL", "ALLEYCAT_CURSOR_SECRET"):
        monkeypatch.delenv(name, raising=False)
    config = get_config()
    assert config.table_name == DEFAULT_TABLE == "alleycat"
    assert config.dead_letter_queue_url is None
    assert len(config.cursor_secret) == 32


def test_environment_is_read_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALLEYCAT_TABLE", "races-prod")
    monkeypatch.setenv("ALLEYCAT_CURSOR_SECRET", "s3cret")
    monkeypatch.setenv("ALLEYCAT_DEAD_LETTER_QUEUE_URL", "https://sqs.example/123/alleycat-dead-letter")
    first = get_config()
    monkeypatch.setenv("ALLEYCAT_TABLE", "other")
    assert get_config() is first
    assert (first.table_name, first.cursor_secret) == ("races-prod", b"s3cret")
    assert first.dead_letter_queue_url == "https://sqs.example/123/alleycat-dead-letter"
