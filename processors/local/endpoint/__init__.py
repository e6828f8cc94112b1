"""The embedded AWS endpoint: moto's server on 127.0.0.1 (``python -m processors.local.endpoint``).

Port ``ALLEYCAT_AWS_PORT`` (default 4566, LocalStack's, so that its users can swap theirs in).
It binds to 127.0.0.1 only, whatever the arguments: it accepts any credentials.

Before serving it adjusts moto in two kinds of ways: :mod:`.fixes` (always on: moto behaviours
that would lose records or memory in a run of hours, each naming what it works around) and
:mod:`.speedups` (only on the pinned moto version: they use moto's private internals).
"""

DEFAULT_PORT = 4566
HOST = "127.0.0.1"


def replace(owner: object, name: str, value: object) -> None:
    """Put ``value`` in place of moto's ``owner.name`` (the one way this package changes moto)."""
    setattr(owner, name, value)
