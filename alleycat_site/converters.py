"""The ``<id:...>`` path converter: ids from 0 to ``MAX_ID``; anything else matches no route (a 404).

``MAX_ID`` (2**53 - 1) is the bound the pipeline puts on every id (they survive JSON numbers): a larger id
exists nowhere, and passing it on would overflow SQLite's 64-bit integers (a 500) for 20 digits.
"""

from __future__ import annotations

from django.urls import register_converter

from processors.domain.message import MAX_ID, MAX_ID_DIGITS


class IdConverter:
    regex = f"[0-9]{{1,{MAX_ID_DIGITS}}}"

    def to_python(self, value: str) -> int:
        number = int(value)
        if number > MAX_ID:
            raise ValueError("id out of range")  # Django: no match, so a 404
        return number

    def to_url(self, value: int) -> str:
        return str(int(value))


register_converter(IdConverter, "id")
