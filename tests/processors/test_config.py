"""Configuration is read from the environment once, with the names from docs/contracts.md."""

from __future__ import annotations

import pytest

from processors.config import DEFAULT_TABLE, get_config


def test_defaults_for_a_fresh_clone(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ALLEYCAT_TABLE", "ALLEYCAT_DEAD_LETTER_QUEUE_URL"):
        monkeypatch.delenv(name, raising=False)
    config = get_config()
    assert config.table_name == DEFAULT_TABLE == "alleycat"
    assert config.dead_letter_queue_url is None


def test_environment_is_read_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALLEYCAT_TABLE", "races-prod")
    monkeypatch.setenv("ALLEYCAT_DEAD_LETTER_QUEUE_URL", "https://sqs.example/123/alleycat-dead-letter")
    first = get_config()
    monkeypatch.setenv("ALLEYCAT_TABLE", "other")
    assert get_config() is first
    assert first.table_name == "races-prod"
    assert first.dead_letter_queue_url == "https://sqs.example/123/alleycat-dead-letter"
